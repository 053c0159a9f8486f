/* droverctl image import|list|show|delete: bootable disk images in the
 * hosts' image directories (issue 13). The scheduler relays each call to
 * one host; import and delete loop over the hosts here. */
#include "droverctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char image_usage_text[]
    = "Usage: droverctl image SUBCOMMAND [ARGS...]\n"
      "\n"
      "  import NAME FILE [--host H] [--format qcow2|raw]\n"
      "                               upload a bootable disk image to every "
      "up host\n"
      "                               (or H); one shared image directory "
      "takes it once\n"
      "  list [--json]                images and the hosts that have them\n"
      "  show NAME [--json]           one image\n"
      "  delete NAME [--host H]       delete an image no VM uses (from every "
      "host, or H)\n";

/* The format FILE's name says: .qcow2, .raw or .img; "" for any other. */
static const char *
format_of (const char *file)
{
  if (g_str_has_suffix (file, ".qcow2"))
    return "qcow2";
  if (g_str_has_suffix (file, ".raw") || g_str_has_suffix (file, ".img"))
    return "raw";
  return "";
}

/* The images as the hosts last reported them (LIST_IMAGES, no host). */
static ProtobufCMessage *
list_all (Ctl *ctl, GError **error)
{
  Drover__V1__ListImagesRequest req = DROVER__V1__LIST_IMAGES_REQUEST__INIT;

  return ctl_call (ctl, DROVER_SCHED_METHOD_LIST_IMAGES, &req.base, 0, error);
}

/* TRUE if host HOST has image NAME now (asked live). */
static gboolean
host_has (Ctl *ctl, const char *host, const char *name, GError **error)
{
  Drover__V1__ListImagesRequest req = DROVER__V1__LIST_IMAGES_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  const Drover__V1__ListImagesReply *reply;

  req.host = (char *)host;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_LIST_IMAGES, &req.base, 0, error);
  if (msg == NULL)
    return FALSE;
  reply = (const Drover__V1__ListImagesReply *)msg;
  for (size_t i = 0; i < reply->n_images; i++)
    if (strcmp (reply->images[i]->name, name) == 0)
      return TRUE;
  return FALSE;
}

/* The up hosts' names. */
static GPtrArray *
up_hosts (Ctl *ctl, GError **error)
{
  Drover__V1__ListHostsRequest req = DROVER__V1__LIST_HOSTS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg
      = ctl_call (ctl, DROVER_SCHED_METHOD_LIST_HOSTS, &req.base, 0, error);
  const Drover__V1__ListHostsReply *reply;
  GPtrArray *out;

  if (msg == NULL)
    return NULL;
  reply = (const Drover__V1__ListHostsReply *)msg;
  out = g_ptr_array_new_with_free_func (g_free);
  for (size_t i = 0; i < reply->n_hosts; i++)
    if (reply->hosts[i]->info && strcmp (reply->hosts[i]->state, "up") == 0)
      g_ptr_array_add (out, g_strdup (reply->hosts[i]->info->name));
  return out;
}

/* Uploads FD (SIZE bytes) as image NAME to HOST, in pieces. */
static gboolean
upload (Ctl *ctl, int fd, guint64 size, const char *name, const char *format,
        const char *host, gboolean progress, GError **error)
{
  g_autofree guint8 *buf = g_malloc (PROTO_IMAGE_CHUNK_MAX);
  guint64 offset = 0;
  g_autofree char *upload_id = NULL;
  int last_pct = -1;

  do
    {
      Drover__V1__ImageChunk req = DROVER__V1__IMAGE_CHUNK__INIT;
      g_autoptr (ProtobufCMessage) msg = NULL;
      gsize want = MIN ((guint64)PROTO_IMAGE_CHUNK_MAX, size - offset);
      gsize got = 0;
      int pct;

      while (got < want)
        {
          gssize n = pread (fd, buf + got, want - got, offset + got);

          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            {
              g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_IO,
                           "cannot read the image file: %s",
                           n < 0 ? g_strerror (errno) : "it shrank");
              return FALSE;
            }
          got += n;
        }
      req.host = (char *)host;
      req.name = (char *)name;
      req.format = (char *)format;
      req.size = size;
      req.offset = offset;
      req.data.data = buf;
      req.data.len = got;
      req.last = offset + got == size;
      if (upload_id)
        req.upload = upload_id;
      msg = ctl_call (ctl, DROVER_SCHED_METHOD_IMPORT_IMAGE, &req.base, 0,
                      error);
      if (msg == NULL)
        return FALSE;
      if (upload_id == NULL)
        upload_id
            = g_strdup (((const Drover__V1__ImageChunkReply *)msg)->upload);
      offset += got;
      pct = (int)(offset * 100 / size);
      if (progress && pct != last_pct)
        {
          fprintf (stderr, "\rhost %s: %3d%% of %" G_GUINT64_FORMAT " bytes",
                   host, pct, size);
          last_pct = pct;
        }
    }
  while (offset < size);
  if (progress)
    fprintf (stderr, "\n");
  return TRUE;
}

#define IMPORT_USAGE "image import NAME FILE [--host H] [--format qcow2|raw]"

static int
image_import (Ctl *ctl, int argc, char **argv)
{
  g_autofree char *host = NULL, *format = NULL;
  const GOptionEntry entries[]
      = { { "host", 0, 0, G_OPTION_ARG_STRING, &host,
            "Import to this host only (else every up host)", "H" },
          { "format", 0, 0, G_OPTION_ARG_STRING, &format,
            "What the file must be: qcow2 or raw (default: from its name: "
            ".qcow2, .raw, .img; else what qemu-img finds)",
            "F" },
          { NULL } };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) hosts = NULL;
  const char *name, *file, *fmt;
  struct stat st;
  guint done = 0;
  int rc, fd;

  if ((rc = ctl_parse_options ("image import", "NAME FILE",
                               "Upload a bootable disk image (qcow2, or a raw "
                               "boot disk) to the hosts' image directories.",
                               entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc != 3)
    return ctl_usage_error (IMPORT_USAGE, "give the image's NAME and FILE");
  name = argv[1];
  file = argv[2];
  if (!proto_name_validate ("image", name, &error))
    return ctl_usage_error (IMPORT_USAGE, "%s", error->message);
  if (host != NULL && !proto_name_validate ("host", host, &error))
    return ctl_usage_error (IMPORT_USAGE, "%s", error->message);
  fmt = format ? format : format_of (file);
  if (fmt[0] != '\0' && strcmp (fmt, "qcow2") != 0 && strcmp (fmt, "raw") != 0)
    return ctl_usage_error (IMPORT_USAGE, "--format must be qcow2 or raw");
  fd = open (file, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size == 0)
    {
      ctl_print_error ("%s: %s", file,
                       fd < 0 ? g_strerror (errno)
                              : "not a regular, non-empty file");
      if (fd >= 0)
        close (fd);
      return CTL_EXIT_FAILURE;
    }
  if (host != NULL)
    {
      hosts = g_ptr_array_new_with_free_func (g_free);
      g_ptr_array_add (hosts, g_strdup (host));
    }
  else if ((hosts = up_hosts (ctl, &error)) == NULL)
    {
      close (fd);
      return ctl_fail (error);
    }
  if (hosts->len == 0)
    {
      close (fd);
      ctl_print_error ("no host is up");
      return CTL_EXIT_FAILURE;
    }
  for (guint i = 0; i < hosts->len; i++)
    {
      const char *h = hosts->pdata[i];

      /* A host that shares an image directory with one done already
       * sees the image there: nothing to send. */
      if (done > 0 && host_has (ctl, h, name, &error))
        {
          printf ("host %s: has image %s already (a shared image "
                  "directory)\n",
                  h, name);
          continue;
        }
      if (error != NULL)
        break;
      if (!upload (ctl, fd, st.st_size, name, fmt, h, isatty (2), &error))
        break;
      printf ("host %s: image %s imported\n", h, name);
      done++;
    }
  close (fd);
  if (error != NULL)
    return ctl_fail (error);
  return CTL_EXIT_OK;
}

static char *
hosts_text (const Drover__V1__Image *img)
{
  g_autoptr (GString) out = g_string_new (NULL);

  /* A repeated string is a counted array, not NULL-terminated. */
  for (gsize i = 0; i < img->n_hosts; i++)
    g_string_append_printf (out, "%s%s", i ? ", " : "", img->hosts[i]);
  return g_strdup (img->n_hosts ? out->str : "-");
}

static int
image_list (Ctl *ctl, int argc, char **argv)
{
  static const char *const headers[]
      = { "NAME", "FORMAT", "SIZE", "HOSTS", NULL };
  Drover__V1__ListImagesRequest req = DROVER__V1__LIST_IMAGES_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (CliTable) table = cli_table_new (headers);
  const Drover__V1__ListImagesReply *reply;
  int rc;

  if ((rc = ctl_list (ctl, "image list",
                      "List the disk images and the hosts that have them "
                      "(from the hosts' last reports).",
                      DROVER_SCHED_METHOD_LIST_IMAGES, &req.base, argc, argv,
                      &msg))
      >= 0)
    return rc;
  reply = (const Drover__V1__ListImagesReply *)msg;
  for (size_t i = 0; i < reply->n_images; i++)
    {
      const Drover__V1__Image *img = reply->images[i];

      cli_table_add_take (table, g_strdup (img->name), g_strdup (img->format),
                          proto_format_size (img->size), hosts_text (img));
    }
  return ctl_print_table (table);
}

#define SHOW_USAGE "image show NAME [--json]"

static int
image_show (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the image as JSON", NULL },
                                   { NULL } };
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__ListImagesReply *reply;
  int rc;

  if ((rc = ctl_parse_options ("image show", "NAME",
                               "Show a disk image and the hosts that have it.",
                               entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc != 2)
    return ctl_usage_error (SHOW_USAGE, "give the image's NAME");
  if (!proto_name_validate ("image", argv[1], &error))
    return ctl_usage_error (SHOW_USAGE, "%s", error->message);
  msg = list_all (ctl, &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__ListImagesReply *)msg;
  for (size_t i = 0; i < reply->n_images; i++)
    {
      const Drover__V1__Image *img = reply->images[i];

      if (strcmp (img->name, argv[1]) != 0)
        continue;
      if (json)
        {
          ctl_print_message_json (&img->base);
          return CTL_EXIT_OK;
        }
      ctl_kv (7, "NAME", img->name);
      ctl_kv (7, "FORMAT", img->format);
      ctl_kv_take (7, "SIZE", proto_format_size (img->size));
      ctl_kv_take (7, "HOSTS", hosts_text (img));
      return CTL_EXIT_OK;
    }
  ctl_print_error ("no image named '%s' on any host", argv[1]);
  return CTL_EXIT_FAILURE;
}

#define DELETE_USAGE "image delete NAME [--host H]"

static int
image_delete (Ctl *ctl, int argc, char **argv)
{
  g_autofree char *host = NULL;
  const GOptionEntry entries[] = { { "host", 0, 0, G_OPTION_ARG_STRING, &host,
                                     "Delete it from this host only", "H" },
                                   { NULL } };
  g_autoptr (ProtobufCMessage) list = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) hosts = g_ptr_array_new_with_free_func (g_free);
  const Drover__V1__ListImagesReply *reply;
  int rc;

  if ((rc = ctl_parse_options ("image delete", "NAME",
                               "Delete a disk image that no VM uses.", entries,
                               &argc, &argv))
      >= 0)
    return rc;
  if (argc != 2)
    return ctl_usage_error (DELETE_USAGE, "give the image's NAME");
  if (!proto_name_validate ("image", argv[1], &error)
      || (host != NULL && !proto_name_validate ("host", host, &error)))
    return ctl_usage_error (DELETE_USAGE, "%s", error->message);
  if (host != NULL)
    g_ptr_array_add (hosts, g_strdup (host));
  else
    {
      if ((list = list_all (ctl, &error)) == NULL)
        return ctl_fail (error);
      reply = (const Drover__V1__ListImagesReply *)list;
      for (size_t i = 0; i < reply->n_images; i++)
        if (strcmp (reply->images[i]->name, argv[1]) == 0)
          for (size_t j = 0; j < reply->images[i]->n_hosts; j++)
            g_ptr_array_add (hosts, g_strdup (reply->images[i]->hosts[j]));
      if (hosts->len == 0)
        {
          ctl_print_error ("no image named '%s' on any host", argv[1]);
          return CTL_EXIT_FAILURE;
        }
    }
  for (guint i = 0; i < hosts->len; i++)
    {
      Drover__V1__ImageRequest req = DROVER__V1__IMAGE_REQUEST__INIT;
      g_autoptr (ProtobufCMessage) msg = NULL;

      req.name = argv[1];
      req.host = hosts->pdata[i];
      /* A host sharing the directory with one done already: gone there. */
      if (i > 0 && host == NULL
          && !host_has (ctl, hosts->pdata[i], argv[1], &error))
        {
          if (error != NULL)
            return ctl_fail (error);
          continue;
        }
      msg = ctl_call (ctl, DROVER_SCHED_METHOD_DELETE_IMAGE, &req.base, 0,
                      &error);
      if (msg == NULL)
        return ctl_fail (error);
      printf ("host %s: image %s deleted\n", (char *)hosts->pdata[i], argv[1]);
    }
  return CTL_EXIT_OK;
}

int
ctl_cmd_image (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "import", image_import }, { "list", image_list }, { "show", image_show },
    { "delete", image_delete }, { NULL, NULL },
  };

  return ctl_dispatch (ctl, "image", image_usage_text, commands, argc, argv);
}
