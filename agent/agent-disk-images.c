/* Disk images (issue 13): import, list, delete, and the overlay a VM
 * created from an image gets as its disk. See agent-disk-images.h.
 *
 * Every upload is hostile until qemu-img said what it is: a qcow2 image
 * without a backing file or an external data file (either would make
 * QEMU open a file the uploader named), or a raw image that looks like a
 * boot disk (whole 512-byte sectors, the boot signature 55 AA at byte
 * 510: qemu-img calls every file it does not recognise raw, a text file
 * included). The format the uploader declared must be the one found.
 */
#include "agent-disk-images.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stor.h"

PROTO_MSG_AUTOPTR (Drover__V1__ImageChunkReply)

#define DISKS_SUBDIR "disks"
#define UPLOAD_SUFFIX ".import"
#define QEMU_IMG_INFO_MAX (1024 * 1024) /* bytes of qemu-img info output */

static const char *const formats[] = { "qcow2", "raw" };

static gboolean
format_known (const char *format)
{
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    if (g_strcmp0 (format, formats[i]) == 0)
      return TRUE;
  return FALSE;
}

static char *
disks_dir (Agent *agent)
{
  return g_build_filename (agent->image_dir, DISKS_SUBDIR, NULL);
}

static gboolean
name_check (const char *name, GError **error)
{
  g_autoptr (GError) local = NULL;

  if (proto_name_validate ("image", name, &local))
    return TRUE;
  g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID, local->message);
  return FALSE;
}

#define UPLOAD_ID_LEN 16

static gboolean
upload_id_valid (const char *id)
{
  if (!id || strlen (id) != UPLOAD_ID_LEN)
    return FALSE;
  for (const char *p = id; *p; p++)
    if (!g_ascii_isxdigit (*p) || g_ascii_isupper (*p))
      return FALSE;
  return TRUE;
}

/* DIR/.NAME.HOST.ID.import: this host's upload ID of image NAME. */
static char *
upload_path (Agent *agent, const char *name, const char *id)
{
  g_autofree char *dir = disks_dir (agent);
  g_autofree char *base = g_strdup_printf (".%s.%s.%s" UPLOAD_SUFFIX, name,
                                           agent->config.name, id);

  return g_build_filename (dir, base, NULL);
}

/* TRUE if ENTRY (a file name in DIR) is an upload of this host, of image
 * NAME unless NAME is NULL. */
static gboolean
is_own_upload (Agent *agent, const char *entry, const char *name)
{
  g_autofree char *stem = NULL, *want = NULL;
  const char *dot;

  if (entry[0] != '.' || !g_str_has_suffix (entry, UPLOAD_SUFFIX))
    return FALSE;
  stem = g_strndup (entry, strlen (entry) - strlen (UPLOAD_SUFFIX));
  dot = strrchr (stem, '.');
  if (!dot || !upload_id_valid (dot + 1))
    return FALSE;
  stem[dot - stem] = '\0'; /* ".NAME.HOST" */
  if (name)
    {
      want = g_strdup_printf (".%s.%s", name, agent->config.name);
      return strcmp (stem, want) == 0;
    }
  want = g_strdup_printf (".%s", agent->config.name);
  return g_str_has_suffix (stem, want) && strlen (stem) > strlen (want) + 1;
}

/* Removes this host's uploads of image NAME (NULL: of every image). */
static void
remove_uploads (Agent *agent, const char *name, const char *why)
{
  g_autofree char *dir = disks_dir (agent);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *entry;

  while (d && (entry = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = NULL;

      if (!is_own_upload (agent, entry, name))
        continue;
      path = g_build_filename (dir, entry, NULL);
      if (g_unlink (path) == 0 && why)
        drover_message (NULL, NULL, NULL, "removed %s: %s", path, why);
    }
}

static char *
image_path (Agent *agent, const char *name, const char *format)
{
  g_autofree char *dir = disks_dir (agent);
  g_autofree char *base = g_strdup_printf ("%s.%s", name, format);

  return g_build_filename (dir, base, NULL);
}

gboolean
agent_disk_images_find (Agent *agent, const char *name, char **path,
                        char **format, GError **error)
{
  if (!name_check (name, error))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      g_autofree char *p = image_path (agent, name, formats[i]);
      struct stat st;

      if (lstat (p, &st) == 0 && S_ISREG (st.st_mode))
        {
          if (path)
            *path = g_steal_pointer (&p);
          if (format)
            *format = g_strdup (formats[i]);
          return TRUE;
        }
    }
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
               "no image named '%s' on host %s", name, agent->config.name);
  return FALSE;
}

/* --- what a file is (qemu-img info) ------------------------------------ */

/* `qemu-img info --output=json PATH` (FORMAT NULL: probed) as a
 * StorImage; *RAW_JSON gets the text. */
static StorImage *
probe (const char *path, const char *format, char **raw_json, GError **error)
{
  const char *argv[] = {
    "qemu-img", "info", "--output=json", "-U", format ? "-f" : path, format,
    path,       NULL
  };
  g_autofree char *out = NULL, *err = NULL, *wrapped = NULL;
  g_autoptr (GError) local = NULL;
  g_autoptr (GPtrArray) chain = NULL;
  int status = 0;

  if (!format)
    argv[5] = NULL;
  if (!g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     &out, &err, &status, &local)
      || !g_spawn_check_wait_status (status, NULL))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "qemu-img cannot read it: %s",
                   local ? local->message : g_strstrip (err ? err : ""));
      return NULL;
    }
  if (strlen (out) > QEMU_IMG_INFO_MAX)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "qemu-img says too much about it");
      return NULL;
    }
  wrapped = g_strdup_printf ("[%s]", out);
  chain = stor_chain_parse (wrapped, &local);
  if (!chain)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           local->message);
      return NULL;
    }
  if (raw_json)
    *raw_json = g_steal_pointer (&out);
  return g_steal_pointer (&chain->pdata[0]);
}

/* A raw file that looks like a boot disk: whole sectors, 55 AA at 510. */
static gboolean
raw_bootable (const char *path, guint64 size, GError **error)
{
  guint8 sig[2] = { 0, 0 };
  int fd;
  gssize n = -1;

  if (size >= 512 && size % 512 == 0 && (fd = open (path, O_RDONLY)) >= 0)
    {
      n = pread (fd, sig, 2, 510);
      close (fd);
    }
  if (n == 2 && sig[0] == 0x55 && sig[1] == 0xaa)
    return TRUE;
  g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "not a disk image: neither qcow2 nor a raw boot disk "
                       "(whole 512-byte sectors with the boot signature)");
  return FALSE;
}

/* Checks the upload at PATH (SIZE bytes): its format (DECLARED, "" for
 * any) and content; fills IMAGE. */
static gboolean
check_upload (const char *path, guint64 size, const char *declared,
              Drover__V1__Image *image, GError **error)
{
  g_autofree char *json = NULL;
  g_autoptr (StorImage) info = probe (path, NULL, &json, error);

  if (!info)
    return FALSE;
  if (!format_known (info->format))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "not a disk image Drover takes: qemu-img says %s (qcow2 "
                   "or raw only)",
                   info->format);
      return FALSE;
    }
  if (declared[0] != '\0' && strcmp (declared, info->format) != 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "the file is not a %s image (qemu-img finds %s)", declared,
                   info->format);
      return FALSE;
    }
  if (strcmp (info->format, "raw") == 0 && !raw_bootable (path, size, error))
    return FALSE;
  if (info->backing || strstr (json, "\"data-file\"") != NULL
      || strstr (json, "\"backing-filename\"") != NULL)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "an image with a backing file or an external data "
                           "file is refused: import a standalone image "
                           "(qemu-img convert)");
      return FALSE;
    }
  image->format = proto_msg_strdup (info->format);
  image->virtual_size = info->virtual_size;
  image->size = size;
  return TRUE;
}

/* --- ImportImage ------------------------------------------------------- */

static Drover__V1__ImageChunkReply *
chunk_reply (guint64 received)
{
  Drover__V1__ImageChunkReply *reply = g_new0 (Drover__V1__ImageChunkReply, 1);

  drover__v1__image_chunk_reply__init (reply);
  reply->received = received;
  return reply;
}

static gboolean
errno_error (GError **error, int err, const char *what, const char *path)
{
  g_set_error (error, AGENT_ERROR,
               err == ENOSPC || err == EDQUOT ? AGENT_ERROR_NO_RESOURCES
                                              : AGENT_ERROR_FAILED,
               "%s %s: %s", what, path, g_strerror (err));
  return FALSE;
}

static void
fsync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd >= 0)
    {
      (void)fsync (fd);
      close (fd);
    }
}

/* Publishes the checked upload UP as image NAME.FORMAT: never replacing
 * one (link), then the upload goes. */
static gboolean
publish (Agent *agent, const char *up, const char *name, const char *format,
         GError **error)
{
  g_autofree char *final = image_path (agent, name, format);
  g_autofree char *dir = disks_dir (agent);

  if (agent_disk_images_find (agent, name, NULL, NULL, NULL))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "image '%s' exists on host %s", name, agent->config.name);
      return FALSE;
    }
  if (g_chmod (up, 0644) < 0)
    return errno_error (error, errno, "cannot chmod", up);
  if (link (up, final) < 0)
    {
      if (errno == EEXIST)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                       "image '%s' exists on host %s", name,
                       agent->config.name);
          return FALSE;
        }
      return errno_error (error, errno, "cannot publish", final);
    }
  (void)g_unlink (up);
  fsync_dir (dir);
  return TRUE;
}

ProtobufCMessage *
agent_disk_images_import (Agent *agent, const AgentCaller *caller,
                          const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__ImageChunk *req = (const void *)request;
  g_autofree char *dir = NULL, *up = NULL, *id = NULL;
  g_autoptr (Drover__V1__ImageChunkReply) reply = NULL;
  struct stat st;
  int fd;
  guint64 end;

  if (!name_check (req->name, error))
    return NULL;
  if (req->format[0] != '\0' && !format_known (req->format))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "image format '%s': qcow2, raw or none", req->format);
      return NULL;
    }
  if (req->size == 0 || req->size > PROTO_IMAGE_MAX_SIZE)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "image size %" G_GUINT64_FORMAT
                   ": 1 byte to %" G_GUINT64_FORMAT,
                   req->size, (guint64)PROTO_IMAGE_MAX_SIZE);
      return NULL;
    }
  if (req->data.len > PROTO_IMAGE_CHUNK_MAX || req->offset > req->size
      || req->data.len > req->size - req->offset)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "image '%s': a piece of %zu bytes at %" G_GUINT64_FORMAT
                   " does not fit (at most %d bytes, inside %" G_GUINT64_FORMAT
                   ")",
                   req->name, req->data.len, req->offset, PROTO_IMAGE_CHUNK_MAX,
                   req->size);
      return NULL;
    }
  end = req->offset + req->data.len;
  if (req->last && end != req->size)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "image '%s': the last piece ends at %" G_GUINT64_FORMAT
                   ", not at its size %" G_GUINT64_FORMAT,
                   req->name, end, req->size);
      return NULL;
    }
  if (agent_disk_images_find (agent, req->name, NULL, NULL, NULL))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "image '%s' exists on host %s", req->name,
                   agent->config.name);
      return NULL;
    }
  dir = disks_dir (agent);
  if (g_mkdir_with_parents (dir, 0755) < 0)
    {
      errno_error (error, errno, "cannot make", dir);
      return NULL;
    }
  if (req->offset == 0)
    {
      /* A new upload: room for all of it; an older one of the same image
       * here is superseded (its next piece finds no upload). */
      remove_uploads (agent, req->name, NULL);
      id = g_strdup_printf ("%08x%08x", g_random_int (), g_random_int ());
      up = upload_path (agent, req->name, id);
      if (!stor_space_check (dir, req->size, "an image", error))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_NO_RESOURCES,
                       "image '%s' (%" G_GUINT64_FORMAT
                       " bytes) does not fit on host %s",
                       req->name, req->size, agent->config.name);
          return NULL;
        }
      fd = open (up, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                 0600);
    }
  else if (!upload_id_valid (req->upload))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "image '%s': a piece at %" G_GUINT64_FORMAT
                   " needs the upload id the first piece's reply gave",
                   req->name, req->offset);
      return NULL;
    }
  else
    {
      id = g_strdup (req->upload);
      up = upload_path (agent, req->name, id);
      fd = open (up, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    }
  if (fd < 0)
    {
      if (errno == ENOENT)
        g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                     "no upload of image '%s' in progress on host %s: start "
                     "again at 0",
                     req->name, agent->config.name);
      else
        errno_error (error, errno, "cannot open", up);
      return NULL;
    }
  if (fstat (fd, &st) < 0 || (guint64)st.st_size != req->offset)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "the upload of image '%s' is at byte %" G_GINT64_FORMAT
                   ", not %" G_GUINT64_FORMAT ": start again at 0",
                   req->name, (gint64)st.st_size, req->offset);
      close (fd);
      return NULL;
    }
  for (gsize done = 0; done < req->data.len;)
    {
      gssize n = pwrite (fd, req->data.data + done, req->data.len - done,
                         req->offset + done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int err = n < 0 ? errno : ENOSPC;

          close (fd);
          (void)g_unlink (up);
          errno_error (error, err, "cannot write", up);
          return NULL;
        }
      done += n;
    }
  if (agent_fault ("image-import-exit"))
    _exit (1);
  if (req->last && fdatasync (fd) < 0)
    {
      int err = errno;

      close (fd);
      (void)g_unlink (up);
      errno_error (error, err, "cannot sync", up);
      return NULL;
    }
  close (fd);
  reply = chunk_reply (end);
  reply->upload = g_strdup (id);
  if (!req->last)
    return (ProtobufCMessage *)g_steal_pointer (&reply);

  reply->image = g_new0 (Drover__V1__Image, 1);
  drover__v1__image__init (reply->image);
  reply->image->name = proto_msg_strdup (req->name);
  if (!check_upload (up, req->size, req->format, reply->image, error)
      || !publish (agent, up, req->name, reply->image->format, error))
    {
      (void)g_unlink (up);
      g_prefix_error (error, "image '%s': ", req->name);
      return NULL;
    }
  drover_message (NULL, NULL, NULL,
                  "image %s imported (%s, %" G_GUINT64_FORMAT " bytes)",
                  req->name, reply->image->format, req->size);
  return (ProtobufCMessage *)g_steal_pointer (&reply);
}

/* --- ListImages -------------------------------------------------------- */

static int
by_name (gconstpointer a, gconstpointer b)
{
  const Drover__V1__Image *x = *(Drover__V1__Image *const *)a;
  const Drover__V1__Image *y = *(Drover__V1__Image *const *)b;

  return strcmp (x->name, y->name);
}

/* The images, each probed with its format when PROBE (else the virtual
 * size is left 0: host reports stay cheap). */
static GPtrArray *
collect (Agent *agent, gboolean with_probe)
{
  g_autofree char *dir = disks_dir (agent);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  GPtrArray *out = g_ptr_array_new_with_free_func (proto_msg_free);
  const char *entry;

  while (d && (entry = g_dir_read_name (d)) != NULL
         && out->len < PROTO_HOST_MAX_IMAGES)
    {
      const char *dot = strrchr (entry, '.');
      g_autofree char *name = NULL, *path = NULL;
      Drover__V1__Image *img;
      struct stat st;

      if (entry[0] == '.' || !dot || !format_known (dot + 1))
        continue;
      name = g_strndup (entry, dot - entry);
      if (!proto_name_validate ("image", name, NULL))
        continue;
      path = g_build_filename (dir, entry, NULL);
      if (lstat (path, &st) < 0 || !S_ISREG (st.st_mode))
        continue;
      img = g_new0 (Drover__V1__Image, 1);
      drover__v1__image__init (img);
      img->name = proto_msg_strdup (name);
      img->format = proto_msg_strdup (dot + 1);
      img->size = st.st_size;
      if (with_probe)
        {
          g_autoptr (StorImage) info = probe (path, dot + 1, NULL, NULL);

          img->virtual_size = info ? info->virtual_size : 0;
        }
      g_ptr_array_add (out, img);
    }
  g_ptr_array_sort (out, by_name);
  return out;
}

Drover__V1__Image **
agent_disk_images_collect (Agent *agent, gsize *n)
{
  g_autoptr (GPtrArray) all = collect (agent, FALSE);

  *n = all->len;
  g_ptr_array_set_free_func (all, NULL);
  g_ptr_array_add (all, NULL);
  return (Drover__V1__Image **)g_ptr_array_free (g_steal_pointer (&all), FALSE);
}

ProtobufCMessage *
agent_disk_images_list (Agent *agent, const AgentCaller *caller,
                        const ProtobufCMessage *request, GError **error)
{
  Drover__V1__ListImagesReply *reply = g_new0 (Drover__V1__ListImagesReply, 1);
  g_autoptr (GPtrArray) all = collect (agent, TRUE);

  drover__v1__list_images_reply__init (reply);
  reply->n_images = all->len;
  g_ptr_array_set_free_func (all, NULL);
  g_ptr_array_add (all, NULL);
  reply->images
      = (Drover__V1__Image **)g_ptr_array_free (g_steal_pointer (&all), FALSE);
  return (ProtobufCMessage *)reply;
}

/* --- DeleteImage ------------------------------------------------------- */

/* The first domain here whose disk is an overlay on image NAME at PATH
 * (its Drover metadata names the image, or libvirt shows PATH in a
 * disk's backing chain), or NULL; FALSE when libvirt cannot tell. */
static gboolean
image_user (Agent *agent, const char *name, const char *path, char **user,
            GError **error)
{
  g_autoptr (virConnect) conn = agent_libvirt_get (agent->lv, error);
  virDomainPtr *doms = NULL;
  int n;
  g_autofree char *needle = NULL;

  *user = NULL;
  if (!conn)
    return FALSE;
  n = virConnectListAllDomains (conn, &doms, 0);
  if (n < 0)
    {
      agent_libvirt_error (error, "cannot list the domains");
      return FALSE;
    }
  needle = g_strdup_printf ("'%s'", path);
  for (int i = 0; i < n; i++)
    {
      g_autofree char *xml = NULL;
      g_autoptr (Drover__V1__VmSpec) spec = NULL;

      if (*user == NULL)
        xml = virDomainGetXMLDesc (doms[i], 0);
      if (xml)
        {
          g_autofree char *expr
              = strchr (path, '\'')
                    ? NULL
                    : g_strdup_printf ("//devices/disk//backingStore/"
                                       "source[@file=%s]/@file",
                                       needle);
          g_autofree char *hit = expr ? agent_xml_string (xml, expr) : NULL;

          spec = agent_domain_xml_parse (xml, NULL);
          if (hit || (spec && g_strcmp0 (spec->image, name) == 0))
            *user = g_strdup (virDomainGetName (doms[i]));
        }
      virDomainFree (doms[i]);
    }
  free (doms);
  return TRUE;
}

ProtobufCMessage *
agent_disk_images_delete (Agent *agent, const AgentCaller *caller,
                          const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__ImageRequest *req = (const void *)request;
  g_autofree char *path = NULL, *user = NULL;

  if (!agent_disk_images_find (agent, req->name, &path, NULL, error))
    return NULL;
  if (!image_user (agent, req->name, path, &user, error))
    return NULL;
  if (user)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "image '%s' is in use: VM %s's disk is an overlay on it",
                   req->name, user);
      return NULL;
    }
  if (g_unlink (path) < 0)
    {
      errno_error (error, errno, "cannot remove", path);
      return NULL;
    }
  remove_uploads (agent, req->name, NULL);
  drover_message (NULL, NULL, NULL, "image %s deleted", req->name);
  return agent_service_empty_reply ();
}

/* --- VMs from images ----------------------------------------------------- */

gboolean
agent_disk_images_overlay (Agent *agent, const char *name,
                           const char *disk_path, guint64 size,
                           guint64 *virtual_size, GError **error)
{
  g_autofree char *path = NULL, *format = NULL, *size_arg = NULL;
  g_autofree char *disk_dir = g_path_get_dirname (disk_path);
  g_autoptr (StorImage) info = NULL;
  g_autoptr (GError) local = NULL;
  const char *argv[] = { "qemu-img", "create", "-q", "-f",      "qcow2", "-F",
                         NULL,       "-b",     NULL, disk_path, NULL,    NULL };
  g_autofree char *err = NULL;
  int status = 0;

  if (!agent_disk_images_find (agent, name, &path, &format, error))
    return FALSE;
  info = probe (path, format, NULL, error);
  if (!info)
    {
      g_prefix_error (error, "image '%s': ", name);
      return FALSE;
    }
  if (g_file_test (disk_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "disk image %s exists", disk_path);
      return FALSE;
    }
  argv[6] = format;
  argv[8] = path;
  if (size > info->virtual_size)
    argv[10] = size_arg = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
  if (!stor_space_check (disk_dir, 1024 * 1024, "a disk image", error))
    return FALSE;
  if (!g_spawn_sync (NULL, (char **)argv, NULL,
                     G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                     NULL, NULL, &err, &status, &local)
      || !g_spawn_check_wait_status (status, NULL))
    {
      (void)g_unlink (disk_path);
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot make the overlay of image '%s': %s", name,
                   local ? local->message : g_strstrip (err ? err : ""));
      return FALSE;
    }
  if (virtual_size)
    *virtual_size = MAX (size, info->virtual_size);
  return TRUE;
}

/* The seeds in DATA/disks of VMs CONN does not know. */
static void
reclaim_seeds (Agent *agent, virConnectPtr conn)
{
  g_autoptr (GDir) d = g_dir_open (agent->disk_dir, 0, NULL);
  const char *entry;

  while (d && (entry = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *vm = NULL, *path = NULL;
      virDomainPtr dom;
      virErrorPtr err;

      if (!g_str_has_suffix (entry, ".seed.iso"))
        continue;
      vm = g_strndup (entry, strlen (entry) - strlen (".seed.iso"));
      if (!proto_name_validate ("VM", vm, NULL))
        continue;
      dom = virDomainLookupByName (conn, vm);
      if (dom)
        {
          virDomainFree (dom);
          continue;
        }
      /* Only when libvirt says there is none, not when it cannot tell. */
      err = virGetLastError ();
      if (!err || err->code != VIR_ERR_NO_DOMAIN)
        continue;
      path = g_build_filename (agent->disk_dir, entry, NULL);
      if (g_unlink (path) == 0)
        drover_message (vm, NULL, NULL,
                        "removed %s: the seed of a VM not on this host", path);
    }
}

void
agent_disk_images_reclaim (Agent *agent, virConnectPtr conn)
{
  remove_uploads (agent, NULL, "an image upload cut short");
  if (conn)
    reclaim_seeds (agent, conn);
}
