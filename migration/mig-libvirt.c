/* libvirt glue of the migration: errors, destination XML, job stats,
 * socket paths. */
#include "mig-migrate.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)

void
mig_libvirt_error (GError **error, int code, const char *format, ...)
{
  virErrorPtr err = virGetLastError ();
  g_autofree char *prefix = NULL;
  va_list ap;

  va_start (ap, format);
  prefix = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, MIG_ERROR, code, "%s: %s", prefix,
               err && err->message ? err->message : "unknown libvirt error");
}

gboolean
mig_job_id_valid (const char *job_id)
{
  gsize n = job_id ? strlen (job_id) : 0;

  if (n == 0 || n > 64)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isalnum (job_id[i]) && job_id[i] != '-' && job_id[i] != '_')
      return FALSE;
  return TRUE;
}

char *
mig_mem_sock_path (const char *job_id)
{
  return g_strdup_printf ("%s/" MIG_SOCK_PREFIX "%s.sock", MIG_QEMU_SOCK_DIR,
                          job_id);
}

char *
mig_ctl_sock_path (const char *job_id)
{
  return g_strdup_printf ("%s/" MIG_SOCK_PREFIX "%s-ctl.sock", MIG_CTL_SOCK_DIR,
                          job_id);
}

char *
mig_disk_sock_path (const char *job_id)
{
  return g_strdup_printf ("%s/" MIG_SOCK_PREFIX "%s-disk.sock",
                          MIG_QEMU_SOCK_DIR, job_id);
}

guint
mig_sweep_sockets (void)
{
  const char *dirs[] = { MIG_QEMU_SOCK_DIR, MIG_CTL_SOCK_DIR };
  guint n = 0;

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autoptr (GDir) dir = g_dir_open (dirs[i], 0, NULL);
      const char *name;

      if (!dir)
        continue;
      while ((name = g_dir_read_name (dir)))
        {
          g_autofree char *path = NULL;

          if (!g_str_has_prefix (name, MIG_SOCK_PREFIX)
              || !g_str_has_suffix (name, ".sock"))
            continue;
          path = g_build_filename (dirs[i], name, NULL);
          if (g_unlink (path) == 0)
            n++;
        }
    }
  return n;
}

/* --- XML ------------------------------------------------------------------ */

static gboolean
is_element (xmlNodePtr node, const char *name)
{
  return node->type == XML_ELEMENT_NODE
         && xmlStrcmp (node->name, BAD_CAST name) == 0 && node->ns == NULL;
}

static xmlNodePtr
child (xmlNodePtr parent, const char *name)
{
  for (xmlNodePtr n = parent->children; n; n = n->next)
    if (is_element (n, name))
      return n;
  return NULL;
}

static gboolean
is_cdrom (xmlNodePtr dev)
{
  xmlChar *device = xmlGetProp (dev, BAD_CAST "device");
  gboolean yes = device && xmlStrcmp (device, BAD_CAST "cdrom") == 0;

  xmlFree (device);
  return yes;
}

char *
mig_xml_rewrite (const char *xml, const char *new_console, const char *new_disk,
                 GError **error)
{
  return mig_xml_rewrite_seed (xml, new_console, new_disk, NULL, error);
}

char *
mig_xml_rewrite_seed (const char *xml, const char *new_console,
                      const char *new_disk, const char *new_seed,
                      GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  xmlNodePtr root, devices;
  xmlChar *out = NULL;
  int out_len = 0;
  char *result;

  doc = xmlReadMemory (xml, strlen (xml), "domain.xml", NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR
                           | XML_PARSE_NOWARNING);
  root = doc ? xmlDocGetRootElement (doc) : NULL;
  if (!root || !is_element (root, "domain"))
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_INVALID,
                           "not domain XML");
      return NULL;
    }
  devices = child (root, "devices");
  for (xmlNodePtr dev = devices ? devices->children : NULL; dev;
       dev = dev->next)
    {
      xmlNodePtr source;
      xmlChar *type;
      gboolean is_file;

      if (dev->type != XML_ELEMENT_NODE || !(source = child (dev, "source")))
        continue;
      type = xmlGetProp (dev, BAD_CAST "type");
      is_file = type && xmlStrcmp (type, BAD_CAST "file") == 0;
      xmlFree (type);
      if (!is_file)
        continue;
      if ((is_element (dev, "serial") || is_element (dev, "console"))
          && new_console && *new_console)
        xmlSetProp (source, BAD_CAST "path", BAD_CAST new_console);
      else if (is_element (dev, "disk") && is_cdrom (dev))
        {
          /* A cloud-init seed: its own path, never the disk's. */
          if (new_seed && *new_seed)
            xmlSetProp (source, BAD_CAST "file", BAD_CAST new_seed);
        }
      else if (is_element (dev, "disk") && new_disk && *new_disk)
        {
          xmlNodePtr store;

          xmlSetProp (source, BAD_CAST "file", BAD_CAST new_disk);
          /* The chain below names the source's files: the destination's
           * libvirt reads its own from the image. */
          while ((store = child (dev, "backingStore")))
            {
              xmlUnlinkNode (store);
              xmlFreeNode (store);
            }
        }
    }

  xmlDocDumpMemoryEnc (doc, &out, &out_len, "UTF-8");
  if (!out)
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_INVALID,
                           "cannot serialise domain XML");
      return NULL;
    }
  result = g_strndup ((const char *)out, out_len);
  xmlFree (out);
  return result;
}

/* --- job statistics ------------------------------------------------------- */

static guint64
param_u64 (virTypedParameterPtr params, int n, const char *name)
{
  unsigned long long v = 0;

  if (virTypedParamsGetULLong (params, n, name, &v) == 1)
    return v;
  return 0;
}

void
mig_job_stats_parse (virTypedParameterPtr params, int n, MigJobStats *st)
{
  guint64 page = param_u64 (params, n, VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE);

  st->sample.total = param_u64 (params, n, VIR_DOMAIN_JOB_MEMORY_TOTAL);
  st->sample.processed = param_u64 (params, n, VIR_DOMAIN_JOB_MEMORY_PROCESSED);
  st->sample.remaining = param_u64 (params, n, VIR_DOMAIN_JOB_MEMORY_REMAINING);
  st->sample.iteration
      = (guint32)param_u64 (params, n, VIR_DOMAIN_JOB_MEMORY_ITERATION);
  st->sample.dirty_rate
      = (double)param_u64 (params, n, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE)
        * (double)(page ? page : 4096);
  st->sample.throughput
      = (double)param_u64 (params, n, VIR_DOMAIN_JOB_MEMORY_BPS);
  st->downtime_ms = param_u64 (params, n, VIR_DOMAIN_JOB_DOWNTIME);
  st->data_processed = param_u64 (params, n, VIR_DOMAIN_JOB_DATA_PROCESSED);
  st->time_elapsed_ms = param_u64 (params, n, VIR_DOMAIN_JOB_TIME_ELAPSED);
  st->disk_total = param_u64 (params, n, VIR_DOMAIN_JOB_DISK_TOTAL);
  st->disk_processed = param_u64 (params, n, VIR_DOMAIN_JOB_DISK_PROCESSED);
  st->sample.elapsed_ms = (gint64)st->time_elapsed_ms;
  {
    int pct = 0;

    if (virTypedParamsGetInt (params, n, VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE,
                              &pct)
        == 1)
      st->throttle_pct = (guint32)CLAMP (pct, 0, 100);
  }
}

gboolean
mig_job_stats_get (virDomainPtr dom, unsigned int flags, MigJobStats *st)
{
  virTypedParameterPtr params = NULL;
  int n = 0, type = VIR_DOMAIN_JOB_NONE;

  memset (st, 0, sizeof *st);
  if (virDomainGetJobStats (dom, &type, &params, &n, flags) < 0)
    return FALSE;
  st->type = type;
  mig_job_stats_parse (params, n, st);
  virTypedParamsFree (params, n);
  return type != VIR_DOMAIN_JOB_NONE;
}
