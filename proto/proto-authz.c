/* The authorization tables: which roles may call each method of the two
 * services. A method without a row is denied to everyone
 * (proto_server_set_authz), so a new RPC starts out closed until it gets
 * its row here, and the authorization matrix test (generated from these
 * tables, see --print-authz) covers it. */
#include <string.h>

#include "proto.h"

#define OPERATOR PROTO_ROLE_OPERATOR
#define READERS (PROTO_ROLE_OPERATOR | PROTO_ROLE_VIEWER)

/* SchedulerService: agents register and report (as themselves, which the
 * handlers check against the certificate's CN); operators change things;
 * viewers only look. */
const ProtoAuthzRule proto_sched_authz[] = {
  { DROVER_SCHED_METHOD_REGISTER_HOST, PROTO_ROLE_HOST },
  { DROVER_SCHED_METHOD_REPORT_HOST, PROTO_ROLE_HOST },
  { DROVER_SCHED_METHOD_LIST_HOSTS, READERS },
  { DROVER_SCHED_METHOD_LIST_VMS, READERS },
  { DROVER_SCHED_METHOD_GET_VM, READERS },
  { DROVER_SCHED_METHOD_CREATE_VM, OPERATOR },
  { DROVER_SCHED_METHOD_START_VM, OPERATOR },
  { DROVER_SCHED_METHOD_STOP_VM, OPERATOR },
  { DROVER_SCHED_METHOD_DESTROY_VM, OPERATOR },
  { DROVER_SCHED_METHOD_DELETE_VM, OPERATOR },
  { DROVER_SCHED_METHOD_READ_CONSOLE, READERS },
  { DROVER_SCHED_METHOD_LIST_JOBS, READERS },
  { DROVER_SCHED_METHOD_WATCH_JOB, READERS },
  { DROVER_SCHED_METHOD_CANCEL_JOB, OPERATOR },
  { DROVER_SCHED_METHOD_MIGRATE_VM, OPERATOR },
  { DROVER_SCHED_METHOD_WATCH_EVENTS, READERS },
  { DROVER_SCHED_METHOD_CREATE_DASHBOARD_TOKEN, OPERATOR },
  { DROVER_SCHED_METHOD_CREATE_SNAPSHOT, OPERATOR },
  { DROVER_SCHED_METHOD_LIST_SNAPSHOTS, READERS },
  { DROVER_SCHED_METHOD_REVERT_SNAPSHOT, OPERATOR },
  { DROVER_SCHED_METHOD_DELETE_SNAPSHOT, OPERATOR },
  { DROVER_SCHED_METHOD_CLONE_VM, OPERATOR },
  { DROVER_SCHED_METHOD_MAKE_TEMPLATE, OPERATOR },
  { DROVER_SCHED_METHOD_DRAIN_HOST, OPERATOR },
  { DROVER_SCHED_METHOD_UNDRAIN_HOST, OPERATOR },
  /* backup repositories (issue 14) */
  { DROVER_SCHED_METHOD_ADD_REPO, OPERATOR },
  { DROVER_SCHED_METHOD_LIST_REPOS, READERS },
  { DROVER_SCHED_METHOD_GET_REPO_STATUS, READERS },
  { DROVER_SCHED_METHOD_GC_REPO, OPERATOR },
  { DROVER_SCHED_METHOD_VERIFY_BACKUPS, OPERATOR },
  { DROVER_SCHED_METHOD_PRUNE_BACKUPS, OPERATOR },

  /* backups (issue 14) */
  { DROVER_SCHED_METHOD_CREATE_BACKUP, OPERATOR },
  { DROVER_SCHED_METHOD_LIST_BACKUPS, READERS },
  { DROVER_SCHED_METHOD_GET_BACKUP, READERS },
  { DROVER_SCHED_METHOD_RESTORE_BACKUP, OPERATOR },

  /* balancing (issue 15) */
  { DROVER_SCHED_METHOD_PLAN_BALANCE, READERS },
  { DROVER_SCHED_METHOD_APPLY_BALANCE, OPERATOR },
  { DROVER_SCHED_METHOD_GET_BALANCE_STATUS, READERS },
  { DROVER_SCHED_METHOD_SET_BALANCE_MODE, OPERATOR },

  /* disaster-recovery schedules (issue 16) */
  { DROVER_SCHED_METHOD_CREATE_SCHEDULE, OPERATOR },
  { DROVER_SCHED_METHOD_LIST_SCHEDULES, READERS },
  { DROVER_SCHED_METHOD_GET_SCHEDULE, READERS },
  { DROVER_SCHED_METHOD_SET_SCHEDULE_PAUSED, OPERATOR },
  { DROVER_SCHED_METHOD_DELETE_SCHEDULE, OPERATOR },
  { DROVER_SCHED_METHOD_RUN_SCHEDULE, OPERATOR },
  { DROVER_SCHED_METHOD_DRILL_SCHEDULE, OPERATOR },
  { DROVER_SCHED_METHOD_SET_VM_LABELS, OPERATOR },
  { DROVER_SCHED_METHOD_GET_DR_REPORT, READERS },

  /* networks (issue 13) */
  { DROVER_SCHED_METHOD_CREATE_NETWORK, OPERATOR },
  { DROVER_SCHED_METHOD_LIST_NETWORKS, READERS },
  { DROVER_SCHED_METHOD_GET_NETWORK, READERS },
  { DROVER_SCHED_METHOD_DELETE_NETWORK, OPERATOR },

  /* images (issue 13) */
  { DROVER_SCHED_METHOD_IMPORT_IMAGE, OPERATOR },
  { DROVER_SCHED_METHOD_LIST_IMAGES, READERS },
  { DROVER_SCHED_METHOD_DELETE_IMAGE, OPERATOR },
  { DROVER_SCHED_METHOD_ATTACH_NIC, OPERATOR },
  { DROVER_SCHED_METHOD_DETACH_NIC, OPERATOR },
  { DROVER_SCHED_METHOD_SET_VM_MIGRATION, OPERATOR },
};
const gsize proto_sched_authz_len = G_N_ELEMENTS (proto_sched_authz);

/* AgentService: only the scheduler commands an agent. Another host's
 * agent may read a console, to carry its history along with a VM that
 * migrated (the handler serves only VMs that left for that host... see
 * agent-console.c). Operators never talk to agents. */
const ProtoAuthzRule proto_agent_authz[] = {
  { DROVER_AGENT_METHOD_CREATE_VM, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_START_VM, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_STOP_VM, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_DESTROY_VM, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_DELETE_VM, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_READ_CONSOLE, PROTO_ROLE_SCHEDULER | PROTO_ROLE_HOST },
  { DROVER_AGENT_METHOD_GET_HOST_INFO, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_PREPARE_INCOMING, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_MIGRATE_OUT, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_CANCEL_INCOMING, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_CREATE_SNAPSHOT, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_LIST_SNAPSHOTS, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_REVERT_SNAPSHOT, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_DELETE_SNAPSHOT, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_CLONE_VM, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_MAKE_TEMPLATE, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_PREPARE_CLONE_IN, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_CLONE_OUT, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_COMMIT_CLONE_IN, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_ABORT_CLONE_IN, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_CREATE_BACKUP, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_RESTORE_BACKUP, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_ATTACH_REPO, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_GET_REPO_STATUS, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_VERIFY_BACKUPS, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_PRUNE_BACKUPS, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_GC_REPO, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_LIST_BACKUPS, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_GET_BACKUP, PROTO_ROLE_SCHEDULER },
  /* images (issue 13) */
  { DROVER_AGENT_METHOD_IMPORT_IMAGE, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_LIST_IMAGES, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_DELETE_IMAGE, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_ATTACH_NIC, PROTO_ROLE_SCHEDULER },
  { DROVER_AGENT_METHOD_DETACH_NIC, PROTO_ROLE_SCHEDULER },
  /* restore drills' readiness (issue 16) */
  { DROVER_AGENT_METHOD_PING_GUEST_AGENT, PROTO_ROLE_SCHEDULER },
};
const gsize proto_agent_authz_len = G_N_ELEMENTS (proto_agent_authz);

char *
proto_authz_describe (const ProtobufCServiceDescriptor *service,
                      const ProtoAuthzRule *rules, gsize n_rules)
{
  GString *out = g_string_new (NULL);
  const char *short_name = strrchr (service->name, '.');

  short_name = short_name ? short_name + 1 : service->name;
  for (guint m = 0; m < service->n_methods; m++)
    {
      guint roles = 0;
      gboolean listed = FALSE;

      for (gsize i = 0; i < n_rules; i++)
        if (rules[i].method_index == m)
          {
            roles |= rules[i].roles;
            listed = TRUE;
          }
      g_string_append_printf (out, "%s/%s ", short_name,
                              service->methods[m].name);
      if (!listed || roles == 0)
        g_string_append (out, "-\n");
      else
        {
          static const ProtoRole order[] = {
            PROTO_ROLE_HOST,
            PROTO_ROLE_SCHEDULER,
            PROTO_ROLE_OPERATOR,
            PROTO_ROLE_VIEWER,
          };
          gboolean first = TRUE;

          for (gsize r = 0; r < G_N_ELEMENTS (order); r++)
            if (roles & order[r])
              {
                g_string_append_printf (out, "%s%s", first ? "" : ",",
                                        proto_role_to_string (order[r]));
                first = FALSE;
              }
          g_string_append_c (out, '\n');
        }
    }
  return g_string_free (out, FALSE);
}
