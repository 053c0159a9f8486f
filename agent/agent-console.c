/* Console logs: QEMU appends what a VM writes on its serial console to
 * console/NAME.log; console/NAME.history holds what it wrote on the hosts
 * it lived on before (fetched from the source after a migration).
 *
 * ReadConsole serves NAME.history followed by NAME.log as one stream. On
 * a host the VM has left, the same files stay readable until a read at
 * their end, which the destination agent makes once it has copied them:
 * then they are removed.
 *
 * Only the scheduler reads any VM's console. The agent of another host
 * reads one only to carry the history along with a VM that migrates to
 * it: console/NAME.departure, written before the migration starts and
 * dropped if it fails, names that host. All these files are readable by
 * root only (the log by QEMU's group too, QEMU writes it).
 */
#include "agent-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

/* ReadConsole: bytes per read when the request names none, and at most. */
#define CONSOLE_DEFAULT_BYTES (64 * 1024)
#define CONSOLE_MAX_BYTES (1024 * 1024)
/* Fetching the history from the previous host: what is kept of it, the
 * bytes asked for per read, and how long one read may take. */
#define HISTORY_MAX_BYTES (64 * 1024 * 1024)
#define HISTORY_CHUNK (1024 * 1024)
#define SOURCE_CALL_TIMEOUT_MS 10000

static char *
console_file (Agent *agent, const char *name, const char *suffix)
{
  g_autofree char *file = g_strconcat (name, suffix, NULL);

  return g_build_filename (agent->console_dir, file, NULL);
}

char *
agent_console_path (Agent *agent, const char *name)
{
  return console_file (agent, name, ".log");
}

static char *
history_path (Agent *agent, const char *name)
{
  return console_file (agent, name, ".history");
}

static char *
departure_path (Agent *agent, const char *name)
{
  return console_file (agent, name, ".departure");
}

gboolean
agent_console_prepare (Agent *agent, const char *name, GError **error)
{
  g_autofree char *log = agent_console_path (agent, name);
  int fd = g_open (log, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0660);

  if (fd < 0)
    {
      int saved = errno;
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot make console log %s: %s", log, g_strerror (saved));
      return FALSE;
    }
  close (fd);
  return agent_protect (agent, log, 0660, error);
}

gboolean
agent_console_set_departure (Agent *agent, const char *name, const char *host,
                             GError **error)
{
  g_autofree char *path = departure_path (agent, name);

  if (!host)
    {
      (void)g_unlink (path);
      return TRUE;
    }
  /* Written (mode 0600, then renamed) before the migration starts, so
   * that the destination's history fetch right after it finds it. */
  return g_file_set_contents_full (path, host, -1,
                                   G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

/* May CALLER read VM NAME's console? PERMISSION_DENIED if not. */
static gboolean
may_read (Agent *agent, const AgentCaller *caller, const char *name,
          GError **error)
{
  g_autofree char *path = NULL, *host = NULL;

  if (caller->role & PROTO_ROLE_SCHEDULER)
    return TRUE;
  path = departure_path (agent, name);
  if (caller->role == PROTO_ROLE_HOST && caller->name
      && g_file_get_contents (path, &host, NULL, NULL)
      && strcmp (host, caller->name) == 0)
    return TRUE;
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED,
               "host %s may read the console of VM %s only when the VM "
               "migrates from here to it",
               caller->name ? caller->name : "?", name);
  return FALSE;
}

gboolean
agent_console_remove (Agent *agent, const char *name, GError **error)
{
  g_autofree char *log = agent_console_path (agent, name);
  g_autofree char *hist = history_path (agent, name);
  g_autofree char *dep = departure_path (agent, name);
  int saved = 0;

  if (g_unlink (log) < 0 && errno != ENOENT)
    saved = errno;
  (void)g_unlink (hist);
  (void)g_unlink (dep);
  if (saved)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "console log %s stays: %s", log, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

static gint64
file_size (const char *path)
{
  struct stat st;

  return stat (path, &st) == 0 && S_ISREG (st.st_mode) ? st.st_size : -1;
}

/* Reads up to LEN bytes at OFFSET of PATH into BUF; returns bytes read. */
static gsize
read_at (const char *path, gint64 offset, guint8 *buf, gsize len)
{
  gsize got = 0;
  int fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);

  if (fd < 0)
    return 0;
  while (got < len)
    {
      ssize_t n = pread (fd, buf + got, len - got, offset + got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += n;
    }
  close (fd);
  return got;
}

ProtobufCMessage *
agent_console_serve (Agent *agent, const AgentCaller *caller,
                     const Drover__V1__ConsoleRequest *req, GError **error)
{
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autoptr (GError) local = NULL;
  g_autofree char *log = NULL, *hist = NULL;
  g_autofree guint8 *data = NULL;
  Drover__V1__ConsoleChunk *chunk;
  guint32 max = req->max_bytes ? req->max_bytes : CONSOLE_DEFAULT_BYTES;
  gint64 hsize, lsize, size, start;
  gsize got = 0, want;
  gboolean here;

  if (!proto_name_validate ("VM", req->name, error)
      || !may_read (agent, caller, req->name, error))
    return NULL;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  dom = agent_vm_lookup (agent, conn, req->name, &local);
  if (!dom && local->code != AGENT_ERROR_NOT_FOUND)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  here = dom != NULL;
  max = MIN (max, CONSOLE_MAX_BYTES);
  log = agent_console_path (agent, req->name);
  hist = history_path (agent, req->name);
  hsize = file_size (hist);
  lsize = file_size (log);
  if (!here && hsize < 0 && lsize < 0)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  hsize = MAX (hsize, 0);
  lsize = MAX (lsize, 0);
  size = hsize + lsize;
  if (req->offset < 0)
    start = req->offset < -size ? 0 : size + req->offset;
  else
    start = MIN (req->offset, size);
  want = (gsize)MIN ((gint64)max, size - start);
  data = g_malloc (MAX (1, want));
  if (start < hsize)
    got = read_at (hist, start, data, MIN ((gint64)want, hsize - start));
  if (got == (gsize)MAX (0, MIN ((gint64)want, hsize - start)) && got < want)
    got += read_at (log, start + got - hsize, data + got, want - got);

  /* The VM left this host and the reader (the destination agent) has it
   * all: the copy here is no longer needed. */
  if (!here && want == 0 && start == size)
    {
      (void)agent_console_remove (agent, req->name, NULL);
      drover_message (req->name, NULL, NULL,
                      "console log handed over; removed here");
    }

  chunk = g_new0 (Drover__V1__ConsoleChunk, 1);
  drover__v1__console_chunk__init (chunk);
  if (got > 0)
    {
      chunk->data.data = g_steal_pointer (&data);
      chunk->data.len = got;
    }
  chunk->next_offset = start + got;
  chunk->size = size;
  return (ProtobufCMessage *)chunk;
}

gboolean
agent_console_fetch_history (Agent *agent, const char *host,
                             const char *address, const char *name,
                             GError **error)
{
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  g_autoptr (ProtoClient) client = NULL;
  g_autofree char *path = history_path (agent, name);
  g_autofree char *tmp = g_strconcat (path, ".tmp", NULL);
  g_autoptr (GByteArray) buf = g_byte_array_new ();
  Drover__V1__ConsoleRequest req = DROVER__V1__CONSOLE_REQUEST__INIT;
  g_autoptr (AgentTls) tls = agent_tls_get (agent);
  gint64 offset = 0;
  gint64 deadline;

  g_main_context_push_thread_default (ctx);
  /* The source agent must be the host the scheduler named. */
  client = proto_client_new_for (address, tls ? tls->tls : NULL,
                                 PROTO_ROLE_HOST, host, ctx, error);
  g_main_context_pop_thread_default (ctx);
  if (!client)
    return FALSE;
  req.name = (char *)name;
  req.max_bytes = HISTORY_CHUNK;
  for (;;)
    {
      Drover__V1__ConsoleChunk *chunk;
      gsize n;

      req.offset = offset;
      chunk = (Drover__V1__ConsoleChunk *)proto_client_call_sync (
          client, DROVER_AGENT_SERVICE, DROVER_AGENT_METHOD_READ_CONSOLE,
          &req.base, SOURCE_CALL_TIMEOUT_MS, error);
      if (!chunk)
        return FALSE;
      n = chunk->data.len;
      if (buf->len + n > HISTORY_MAX_BYTES)
        n = 0; /* keep what fits; the rest is older than useful */
      g_byte_array_append (buf, chunk->data.data, n);
      offset = chunk->next_offset;
      proto_msg_free (chunk);
      if (n == 0)
        break;
    }
  if (!g_file_set_contents_full (tmp, (const char *)buf->data, buf->len,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return FALSE;
  if (g_rename (tmp, path) < 0)
    {
      int saved = errno;
      (void)g_unlink (tmp);
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot rename %s: %s", tmp, g_strerror (saved));
      return FALSE;
    }
  /* A read at the end removes the source's copy once the VM is gone
   * there; libvirt undefines it just after closing its connection to us,
   * so repeat until the source no longer knows the log. */
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (GError) e = NULL;
      ProtobufCMessage *reply;

      req.offset = offset;
      reply = proto_client_call_sync (client, DROVER_AGENT_SERVICE,
                                      DROVER_AGENT_METHOD_READ_CONSOLE,
                                      &req.base, SOURCE_CALL_TIMEOUT_MS, &e);
      if (!reply)
        break; /* NOT_FOUND: removed */
      proto_msg_free (reply);
      g_usleep (300 * 1000);
    }
  return TRUE;
}
