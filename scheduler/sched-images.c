/* Images (issue 13): the report check, placement's test, and the RPCs
 * ImportImage, ListImages and DeleteImage, each relayed to one host. See
 * sched-images.h. */
#include "sched-images.h"

#include <string.h>

#include "sched-events.h"

#define IMAGE_CALL_TIMEOUT_MS (5 * 60 * 1000) /* a last piece: qemu-img */

gboolean
sched_host_has_image (const SchedHost *host, const char *name)
{
  if (host == NULL || host->info == NULL)
    return FALSE;
  for (gsize i = 0; i < host->info->n_images; i++)
    if (strcmp (host->info->images[i]->name, name) == 0)
      return TRUE;
  return FALSE;
}

gboolean
sched_host_images_check (const Drover__V1__HostInfo *info, GError **error)
{
  if (info->n_images > PROTO_HOST_MAX_IMAGES)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "host '%s' reports %zu images, at most %d", info->name,
                   info->n_images, PROTO_HOST_MAX_IMAGES);
      return FALSE;
    }
  for (gsize i = 0; i < info->n_images; i++)
    {
      const Drover__V1__Image *img = info->images[i];
      g_autoptr (GError) local = NULL;

      if (img == NULL || !proto_name_validate ("image", img->name, &local)
          || (strcmp (img->format, "qcow2") != 0
              && strcmp (img->format, "raw") != 0))
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                       "host '%s': a bad image in its report%s%s", info->name,
                       local ? ": " : "", local ? local->message : "");
          return FALSE;
        }
      for (gsize j = 0; j < i; j++)
        if (strcmp (info->images[j]->name, img->name) == 0)
          {
            g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                         "host '%s' reports image '%s' twice", info->name,
                         img->name);
            return FALSE;
          }
    }
  return TRUE;
}

/* --- relaying to one host ---------------------------------------------- */

typedef struct
{
  SchedService *svc;
  ProtoServerCall *call;
  char *host;
  char *name; /* the image */
  guint method;
  gboolean last; /* ImportImage: the piece that publishes */
} ImageCall;

static void
image_call_free (ImageCall *c)
{
  g_free (c->host);
  g_free (c->name);
  g_free (c);
}

static void
relay_done (const ProtobufCMessage *reply, const GError *error,
            gpointer user_data)
{
  ImageCall *c = user_data;

  if (error != NULL)
    sched_agents_call_fail (c->call, c->host, error);
  else if (c->method == DROVER_AGENT_METHOD_LIST_IMAGES)
    {
      Drover__V1__ListImagesReply *list = proto_msg_copy (reply);

      /* Live from that host: it has every image it lists. */
      for (gsize i = 0; i < list->n_images; i++)
        {
          Drover__V1__Image *img = list->images[i];

          for (gsize j = 0; j < img->n_hosts; j++)
            g_free (img->hosts[j]);
          g_free (img->hosts);
          img->hosts = g_new0 (char *, 2);
          img->hosts[0] = g_strdup (c->host);
          img->n_hosts = 1;
        }
      proto_server_call_reply (c->call, &list->base);
      proto_msg_free (list);
    }
  else
    {
      if (c->method == DROVER_AGENT_METHOD_IMPORT_IMAGE && c->last)
        {
          const Drover__V1__ImageChunkReply *r = (const void *)reply;

          drover_message (NULL, NULL, c->host, "image %s imported", c->name);
          sched_events_emit (
              c->svc->events, SCHED_EVENT_IMAGE_IMPORTED, NULL, c->host, NULL,
              NULL,
              "image %s imported on host %s (%s, %" G_GUINT64_FORMAT " bytes)",
              c->name, c->host, r->image ? r->image->format : "?",
              r->image ? r->image->size : 0);
        }
      else if (c->method == DROVER_AGENT_METHOD_DELETE_IMAGE)
        {
          drover_message (NULL, NULL, c->host, "image %s deleted", c->name);
          sched_events_emit (c->svc->events, SCHED_EVENT_IMAGE_DELETED, NULL,
                             c->host, NULL, NULL, "image %s deleted on host %s",
                             c->name, c->host);
        }
      proto_server_call_reply (c->call, reply);
    }
  image_call_free (c);
}

/* Relays REQUEST to host HOST's agent METHOD; fails CALL if it cannot. */
static void
relay (SchedService *svc, ProtoServerCall *call, const char *host,
       const char *name, guint method, const ProtobufCMessage *request,
       gboolean last)
{
  g_autoptr (GError) error = NULL;
  ProtoClient *client;
  ImageCall *c;

  if (!proto_name_validate ("host", host, &error)
      || (client = sched_agents_client_up (svc->agents, host, NULL, &error))
             == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  c = g_new0 (ImageCall, 1);
  c->svc = svc;
  c->call = call;
  c->host = g_strdup (host);
  c->name = g_strdup (name);
  c->method = method;
  c->last = last;
  sched_agents_call (svc->agents, client, method, request,
                     IMAGE_CALL_TIMEOUT_MS, relay_done, c);
}

void
sched_images_handle_import (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  const Drover__V1__ImageChunk *req = (const void *)request;
  g_autoptr (GError) error = NULL;

  /* The agent checks the rest (sizes, pieces, content). */
  if (!proto_name_validate ("image", req->name, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  relay (user_data, call, req->host, req->name,
         DROVER_AGENT_METHOD_IMPORT_IMAGE, request, req->last);
}

/* --- ListImages -------------------------------------------------------- */

static int
by_name (gconstpointer a, gconstpointer b)
{
  const Drover__V1__Image *x = *(Drover__V1__Image *const *)a;
  const Drover__V1__Image *y = *(Drover__V1__Image *const *)b;

  return strcmp (x->name, y->name);
}

void
sched_images_handle_list (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__ListImagesRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GHashTable) by = NULL;
  g_autoptr (GPtrArray) images = NULL;
  Drover__V1__ListImagesReply reply = DROVER__V1__LIST_IMAGES_REPLY__INIT;
  Drover__V1__ListImagesRequest ask = DROVER__V1__LIST_IMAGES_REQUEST__INIT;

  if (req->host[0] != '\0')
    {
      relay (svc, call, req->host, "", DROVER_AGENT_METHOD_LIST_IMAGES,
             &ask.base, FALSE);
      return;
    }
  /* From the reports: every image, with the hosts that have it. */
  hosts = sched_store_list_hosts (svc->store, &error);
  if (hosts == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  by = g_hash_table_new (g_str_hash, g_str_equal);
  images = g_ptr_array_new_with_free_func (proto_msg_free);
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *host = hosts->pdata[i];

      for (gsize j = 0; host->info && j < host->info->n_images; j++)
        {
          const Drover__V1__Image *img = host->info->images[j];
          Drover__V1__Image *out = g_hash_table_lookup (by, img->name);

          if (out == NULL)
            {
              out = proto_msg_copy (&img->base);
              g_ptr_array_add (images, out);
              g_hash_table_insert (by, out->name, out);
            }
          out->hosts = g_renew (char *, out->hosts, out->n_hosts + 1);
          out->hosts[out->n_hosts++] = g_strdup (host->name);
        }
    }
  g_ptr_array_sort (images, by_name);
  reply.n_images = images->len;
  reply.images = (Drover__V1__Image **)images->pdata;
  proto_server_call_reply (call, &reply.base);
}

/* --- DeleteImage ------------------------------------------------------- */

void
sched_images_handle_delete (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__ImageRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GString) users = g_string_new (NULL);
  guint n = 0;

  if (!proto_name_validate ("image", req->name, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  vms = sched_store_list_vms (svc->store, NULL, &error);
  if (vms == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      if (strcmp (vm->spec->image, req->name) != 0)
        continue;
      if (n++ < 5)
        g_string_append_printf (users, "%s%s", n > 1 ? ", " : "", vm->name);
    }
  if (n > 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "image '%s' is in use by %u VM%s (%s%s): delete "
                              "them first",
                              req->name, n, n > 1 ? "s" : "", users->str,
                              n > 5 ? ", ..." : "");
      return;
    }
  relay (svc, call, req->host, req->name, DROVER_AGENT_METHOD_DELETE_IMAGE,
         request, FALSE);
}
