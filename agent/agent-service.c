/* AgentService: the scheduler's commands to this host.
 *
 * Every call runs in a GTask worker thread (libvirt calls can take
 * seconds: a graceful shutdown waits up to its timeout) and is answered
 * from the agent's GMainContext, so reports keep flowing meanwhile.
 * Operations on one VM name are serialised by agent_vm_claim (agent-vm.c):
 * a second one fails with ABORTED instead of racing the first.
 */
#include "agent-private.h"
#include "agent-disk-images.h"

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "stor.h"

#define STOP_POLL_MS 100
#define STOP_MAX_TIMEOUT_MS (10 * 60 * 1000)
#define STOP_DEFAULT_TIMEOUT_MS 10000

/* --- helpers ----------------------------------------------------------- */

ProtobufCMessage *
agent_vm_reply (virDomainPtr dom, GError **error)
{
  Drover__V1__AgentVmReply *reply;
  Drover__V1__VmStatus *status = agent_vm_status_from_domain (dom, error);

  if (!status)
    return NULL;
  reply = g_new0 (Drover__V1__AgentVmReply, 1);
  drover__v1__agent_vm_reply__init (reply);
  reply->vm = status;
  return (ProtobufCMessage *)reply;
}

static int
undefine (virDomainPtr dom)
{
  /* Not every driver knows every flag (the test driver refuses NVRAM
   * and CHECKPOINTS_METADATA): retry with fewer. */
  static const unsigned int flag_sets[] = {
    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM,
    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
    0,
  };
  int rc = -1;

  for (guint i = 0; i < G_N_ELEMENTS (flag_sets); i++)
    {
      virErrorPtr err;

      rc = virDomainUndefineFlags (dom, flag_sets[i]);
      if (rc == 0)
        break;
      err = virGetLastError ();
      if (!err
          || (err->code != VIR_ERR_INVALID_ARG
              && err->code != VIR_ERR_NO_SUPPORT))
        break;
    }
  return rc;
}

/* Undoes a partial create. Errors are ignored: the caller's error is the
 * one that matters, and each step is attempted regardless. */
static void
rollback_create (virDomainPtr dom, const char *disk_path, gboolean disk_made,
                 const char *console_path, gboolean console_existed)
{
  if (dom)
    {
      if (virDomainIsActive (dom) == 1)
        (void)virDomainDestroy (dom);
      (void)undefine (dom);
    }
  if (disk_made)
    (void)stor_disk_remove (disk_path, NULL);
  if (!console_existed)
    (void)g_unlink (console_path);
}

/* --- operations (worker threads) --------------------------------------- */

static ProtobufCMessage *
op_create (Agent *agent, const AgentCaller *caller,
           const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentCreateVmRequest *req = (const void *)request;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autofree char *disk_path = NULL;
  g_autofree char *console_path = NULL;
  g_autofree char *seed_path = NULL;
  guint64 vsize = 0;
  gboolean disk_made = FALSE, console_existed = TRUE;
  ProtobufCMessage *reply;

  /* Checked before anything is made, kernel and initrd included. */
  if (!proto_vm_spec_check (req->spec, error))
    return NULL;
  spec = agent_vm_spec_for_host (agent, req->spec, error);
  if (!spec)
    return NULL;

  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  if (!agent_vm_admit (agent, conn, spec, error))
    return NULL;

  console_path = agent_console_path (agent, spec->name);
  console_existed = g_file_test (console_path, G_FILE_TEST_EXISTS);
  if (spec->image[0] != '\0')
    {
      /* Images (issue 13): an overlay on the image, SIZE if larger. */
      disk_path = stor_disk_path (agent->config.data_dir, spec->name, error);
      if (!disk_path
          || !agent_disk_images_overlay (agent, spec->image, disk_path,
                                         spec->disk, &vsize, error))
        goto fail;
      /* The domain records the disk's real size: a migration copies it. */
      spec->disk = vsize;
      disk_made = TRUE;
      if (!agent_protect (agent, disk_path, 0660, error))
        goto rollback;
    }
  else if (spec->disk > 0)
    {
      disk_path = stor_disk_path (agent->config.data_dir, spec->name, error);
      if (!disk_path || !stor_disk_create (disk_path, spec->disk, error))
        goto fail;
      disk_made = TRUE;
      /* QEMU writes it, nobody else reads it. */
      if (!agent_protect (agent, disk_path, 0660, error))
        goto rollback;
    }
  if (!agent_console_prepare (agent, spec->name, error))
    goto rollback;
  if (spec->cloud_init_user_data.len > 0)
    {
      seed_path = agent_cloud_init_seed_path (disk_path);
      if (!agent_cloud_init_seed_make (agent, spec, seed_path, error))
        goto rollback;
    }
  if (agent_fault_fail ("create-after-disk", error))
    goto rollback;

  dom = agent_vm_define (agent, conn, spec, disk_path, NULL, NULL, "VM", error);
  if (!dom)
    goto rollback;
  if (agent_fault_fail ("create-after-define", error))
    goto rollback;
  if (virDomainCreate (dom) < 0)
    {
      agent_libvirt_error (error, "cannot start VM %s", spec->name);
      goto rollback;
    }
  if (agent_fault_fail ("create-after-start", error))
    goto rollback;
  reply = agent_vm_reply (dom, error);
  if (!reply)
    goto rollback;
  agent_vm_release (agent, spec->name);
  return reply;

rollback:
  rollback_create (dom, disk_path, disk_made, console_path, console_existed);
  if (seed_path)
    (void)g_unlink (seed_path);
fail:
  agent_vm_release (agent, spec->name);
  return NULL;
}

/* The VM a request names: its string field "name" (VmRequest,
 * StopVmRequest, DeleteVmRequest, ...), or NULL. */
static const char *
request_vm_name (const ProtobufCMessage *request)
{
  const ProtobufCFieldDescriptor *field
      = protobuf_c_message_descriptor_get_field_by_name (request->descriptor,
                                                         "name");

  if (!field || field->type != PROTOBUF_C_TYPE_STRING
      || field->label == PROTOBUF_C_LABEL_REPEATED)
    return NULL;
  return *(const char *const *)((const char *)request + field->offset);
}

/* Runs FUNC on the Drover VM REQUEST names, with the name claimed. */
static ProtobufCMessage *
with_vm (Agent *agent, const ProtobufCMessage *request, AgentVmFunc func,
         GError **error)
{
  const char *name = request_vm_name (request);
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  ProtobufCMessage *reply = NULL;

  if (!proto_name_validate ("VM", name, error))
    return NULL;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  if (!agent_vm_claim (agent, name, error))
    return NULL;
  dom = agent_vm_lookup (agent, conn, name, error);
  if (dom)
    reply = func (agent, conn, dom, request, error);
  agent_vm_release (agent, name);
  return reply;
}

static ProtobufCMessage *
vm_start (Agent *agent, virConnectPtr conn, virDomainPtr dom,
          const ProtobufCMessage *request, GError **error)
{
  /* Templates are never started (agent-clone.c). */
  if (!agent_clone_check_start (agent, dom, error))
    return NULL;
  if (virDomainIsActive (dom) != 1 && virDomainCreate (dom) < 0)
    {
      agent_libvirt_error (error, "cannot start VM %s", virDomainGetName (dom));
      return NULL;
    }
  return agent_vm_reply (dom, error);
}

/* Destroys DOM; a domain that stopped by itself meanwhile is fine. */
static gboolean
destroy (virDomainPtr dom, GError **error)
{
  if (virDomainDestroy (dom) < 0 && virDomainIsActive (dom) != 0)
    {
      agent_libvirt_error (error, "cannot destroy VM %s",
                           virDomainGetName (dom));
      return FALSE;
    }
  return TRUE;
}

static ProtobufCMessage *
vm_stop (Agent *agent, virConnectPtr conn, virDomainPtr dom,
         const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__StopVmRequest *req = (const void *)request;
  guint timeout_ms
      = req->timeout_ms ? req->timeout_ms : STOP_DEFAULT_TIMEOUT_MS;
  gint64 deadline;
  gboolean forced = FALSE;
  ProtobufCMessage *reply;

  if (virDomainIsActive (dom) != 1)
    return agent_vm_reply (dom, error);
  timeout_ms = MIN (timeout_ms, STOP_MAX_TIMEOUT_MS);
  /* A guest that ignores ACPI is destroyed after the grace period. */
  if (!req->force && virDomainShutdown (dom) == 0)
    {
      deadline = g_get_monotonic_time () + (gint64)timeout_ms * 1000;
      while (virDomainIsActive (dom) == 1 && g_get_monotonic_time () < deadline)
        g_usleep (STOP_POLL_MS * 1000);
    }
  if (virDomainIsActive (dom) == 1)
    {
      if (!destroy (dom, error))
        return NULL;
      forced = TRUE;
    }
  reply = agent_vm_reply (dom, error);
  /* The operator must learn that the guest did not shut down itself. */
  if (reply != NULL)
    ((Drover__V1__AgentVmReply *)reply)->forced = forced;
  return reply;
}

static ProtobufCMessage *
vm_destroy (Agent *agent, virConnectPtr conn, virDomainPtr dom,
            const ProtobufCMessage *request, GError **error)
{
  if (virDomainIsActive (dom) == 1 && !destroy (dom, error))
    return NULL;
  return agent_vm_reply (dom, error);
}

static ProtobufCMessage *
vm_delete (Agent *agent, virConnectPtr conn, virDomainPtr dom,
           const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__DeleteVmRequest *req = (const void *)request;
  const char *name = virDomainGetName (dom);
  g_autofree char *disk_path = NULL;

  /* Not a base linked clones still use (agent-clone.c). */
  if (!agent_clone_check_delete (agent, conn, dom, error))
    return NULL;
  if (virDomainIsActive (dom) == 1)
    {
      if (!req->force)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                       "VM %s is running; stop it first or use --force", name);
          return NULL;
        }
      if (!destroy (dom, error))
        return NULL;
    }
  if (undefine (dom) < 0)
    {
      agent_libvirt_error (error, "cannot undefine VM %s", name);
      return NULL;
    }
  disk_path = stor_disk_path (agent->config.data_dir, name, error);
  if (!disk_path || !stor_disk_remove (disk_path, error))
    {
      g_prefix_error (error, "VM %s is undefined but: ", name);
      return NULL;
    }
  /* Its cloud-init seed (issue 13), if it had one. */
  {
    g_autofree char *seed = agent_cloud_init_seed_path (disk_path);

    (void)g_unlink (seed);
  }
  /* Its snapshots' images and memory files (issue 12). */
  if (!agent_snapshot_remove_all (agent, name, error))
    {
      g_prefix_error (error,
                      "VM %s is undefined but its snapshots stay: ", name);
      return NULL;
    }
  /* Its console log and the history from earlier hosts. */
  if (!agent_console_remove (agent, name, error))
    {
      g_prefix_error (error, "VM %s is undefined but its ", name);
      return NULL;
    }
  return agent_service_empty_reply ();
}

static ProtobufCMessage *
op_console (Agent *agent, const AgentCaller *caller,
            const ProtobufCMessage *request, GError **error)
{
  /* History from earlier hosts + the live log (agent-console.c). */
  return agent_console_serve (agent, caller, (const void *)request, error);
}

static ProtobufCMessage *
op_host_info (Agent *agent, const AgentCaller *caller,
              const ProtobufCMessage *request, GError **error)
{
  g_autoptr (virConnect) conn = agent_libvirt_get (agent->lv, error);

  if (!conn)
    return NULL;
  return (ProtobufCMessage *)agent_host_info_for (agent, conn, error);
}

/* --- dispatch ---------------------------------------------------------- */

/* How each method is served: by OP in a worker thread, by VM in a worker
 * thread on the VM the request names (claimed), or by HANDLER itself (a
 * stream). */
typedef struct
{
  guint method;
  AgentOpFunc op;
  AgentVmFunc vm;
  ProtoHandler handler;
} AgentMethod;

static const AgentMethod agent_methods[] = {
  { DROVER_AGENT_METHOD_CREATE_VM, op_create },
  { DROVER_AGENT_METHOD_START_VM, NULL, vm_start },
  { DROVER_AGENT_METHOD_STOP_VM, NULL, vm_stop },
  { DROVER_AGENT_METHOD_DESTROY_VM, NULL, vm_destroy },
  { DROVER_AGENT_METHOD_DELETE_VM, NULL, vm_delete },
  { DROVER_AGENT_METHOD_READ_CONSOLE, op_console },
  { DROVER_AGENT_METHOD_GET_HOST_INFO, op_host_info },
  { DROVER_AGENT_METHOD_PREPARE_INCOMING, agent_mig_dst_prepare },
  { DROVER_AGENT_METHOD_MIGRATE_OUT, NULL, NULL, agent_mig_src_migrate_out },
  { DROVER_AGENT_METHOD_CANCEL_INCOMING, agent_mig_dst_cancel },
  { DROVER_AGENT_METHOD_CREATE_SNAPSHOT, NULL, NULL, agent_snapshot_create },
  { DROVER_AGENT_METHOD_LIST_SNAPSHOTS, agent_snapshot_list },
  { DROVER_AGENT_METHOD_REVERT_SNAPSHOT, NULL, NULL, agent_snapshot_revert },
  { DROVER_AGENT_METHOD_DELETE_SNAPSHOT, NULL, NULL, agent_snapshot_delete },
  { DROVER_AGENT_METHOD_CLONE_VM, NULL, NULL, agent_clone_vm },
  { DROVER_AGENT_METHOD_MAKE_TEMPLATE, NULL, agent_clone_make_template },
  { DROVER_AGENT_METHOD_PREPARE_CLONE_IN, agent_clone_in_prepare },
  { DROVER_AGENT_METHOD_CLONE_OUT, NULL, NULL, agent_clone_out },
  { DROVER_AGENT_METHOD_COMMIT_CLONE_IN, agent_clone_in_commit },
  { DROVER_AGENT_METHOD_ABORT_CLONE_IN, agent_clone_in_abort },
  { DROVER_AGENT_METHOD_CREATE_BACKUP, NULL, NULL, agent_backup_create },
  { DROVER_AGENT_METHOD_RESTORE_BACKUP, NULL, NULL, agent_backup_restore },
  /* Backup repositories (issue 14) */
  { DROVER_AGENT_METHOD_ATTACH_REPO, agent_backup_attach_repo },
  { DROVER_AGENT_METHOD_GET_REPO_STATUS, agent_backup_repo_status },
  { DROVER_AGENT_METHOD_VERIFY_BACKUPS, NULL, NULL, agent_backup_verify },
  { DROVER_AGENT_METHOD_PRUNE_BACKUPS, agent_backup_prune },
  { DROVER_AGENT_METHOD_GC_REPO, NULL, NULL, agent_backup_gc },
  /* Backups (issue 14) */
  { DROVER_AGENT_METHOD_LIST_BACKUPS, agent_backup_list },
  { DROVER_AGENT_METHOD_GET_BACKUP, agent_backup_get },
  /* Images (issue 13) */
  { DROVER_AGENT_METHOD_IMPORT_IMAGE, agent_disk_images_import },
  { DROVER_AGENT_METHOD_LIST_IMAGES, agent_disk_images_list },
  { DROVER_AGENT_METHOD_DELETE_IMAGE, agent_disk_images_delete },
  /* NIC hot-plug (issue 13) */
  { DROVER_AGENT_METHOD_ATTACH_NIC, NULL, agent_nic_attach },
  { DROVER_AGENT_METHOD_DETACH_NIC, NULL, agent_nic_detach },
  /* Drill readiness (issue 16) */
  { DROVER_AGENT_METHOD_PING_GUEST_AGENT, agent_guest_agent_ping },
};
G_STATIC_ASSERT (G_N_ELEMENTS (agent_methods) == DROVER_AGENT_N_METHODS);

/* What a registered handler is given: the agent and its method. */
typedef struct
{
  Agent *agent;
  const AgentMethod *method;
} AgentBinding;

struct _AgentService
{
  AgentBinding bindings[G_N_ELEMENTS (agent_methods)];
};

typedef struct
{
  Agent *agent;
  ProtoServerCall *call;
  const ProtobufCMessage *request;
  const AgentMethod *method;
  AgentCaller caller; /* its name owned */
} ServiceOp;

static void
op_thread (GTask *task, gpointer source, gpointer task_data,
           GCancellable *cancellable)
{
  ServiceOp *op = task_data;
  GError *error = NULL;
  ProtobufCMessage *reply
      = op->method->op
            ? op->method->op (op->agent, &op->caller, op->request, &error)
            : with_vm (op->agent, op->request, op->method->vm, &error);

  if (reply)
    g_task_return_pointer (task, reply, proto_msg_free);
  else
    g_task_return_error (task, error);
}

static void
op_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ServiceOp *op = user_data;
  g_autoptr (GError) error = NULL;
  ProtobufCMessage *reply = g_task_propagate_pointer (G_TASK (result), &error);

  /* Main context, like the reporter's numbering: reports collected from
   * now on are numbered seq + 1 and later, and see what this did. */
  if (reply && reply->descriptor == &drover__v1__agent_vm_reply__descriptor)
    ((Drover__V1__AgentVmReply *)reply)->fresh_report_seq = op->agent->seq + 1;
  if (reply)
    {
      proto_server_call_reply (op->call, reply);
      proto_msg_free (reply);
    }
  else
    {
      proto_server_call_fail (op->call, agent_error_to_status (error), "%s",
                              error->message);
    }
  agent_unref (op->agent);
  g_free ((char *)op->caller.name);
  g_free (op);
}

ProtobufCMessage *
agent_service_empty_reply (void)
{
  Drover__V1__Empty *reply = g_new0 (Drover__V1__Empty, 1);

  drover__v1__empty__init (reply);
  return (ProtobufCMessage *)reply;
}

/* Serves one call: a stream by its handler, anything else in a worker
 * thread answered from the agent's main context (the reply, or the
 * status of the error, agent_error_to_status), holding a reference to
 * the agent until then. */
static void
handle (ProtoServerCall *call, const ProtobufCMessage *request, gpointer data)
{
  const AgentBinding *b = data;
  ServiceOp *op;
  GTask *task;

  if (b->method->handler)
    {
      b->method->handler (call, request, b->agent);
      return;
    }
  op = g_new0 (ServiceOp, 1);
  op->agent = agent_ref (b->agent);
  op->call = call;
  op->request = request;
  op->method = b->method;
  op->caller.role = proto_server_call_get_peer_role (call);
  op->caller.name = g_strdup (proto_server_call_get_peer_name (call));
  /* The callback runs in the thread-default context: the agent's. */
  task = g_task_new (NULL, NULL, op_done, op);
  g_task_set_task_data (task, op, NULL);
  g_task_run_in_thread (task, op_thread);
  g_object_unref (task);
}

AgentService *
agent_service_register (Agent *agent, ProtoServer *server)
{
  AgentService *svc = g_new0 (AgentService, 1);

  for (guint i = 0; i < G_N_ELEMENTS (agent_methods); i++)
    {
      svc->bindings[i].agent = agent;
      svc->bindings[i].method = &agent_methods[i];
      /* No way to serve it yet: authorized, then UNIMPLEMENTED. */
      proto_server_add_method (
          server, DROVER_AGENT_SERVICE, agent_methods[i].method,
          agent_methods[i].op || agent_methods[i].vm || agent_methods[i].handler
              ? handle
              : NULL,
          &svc->bindings[i]);
    }
  proto_server_set_authz (server, DROVER_AGENT_SERVICE, proto_agent_authz,
                          proto_agent_authz_len);
  return svc;
}

void
agent_service_free (AgentService *svc)
{
  g_free (svc);
}
