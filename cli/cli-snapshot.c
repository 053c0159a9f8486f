/* droverctl snapshot create|list|show|revert|delete, and the job-following
 * that vm clone shares with them (ctl_start_storage_job). */
#include "droverctl.h"

#include <stdio.h>
#include <string.h>

static const char snapshot_usage_text[]
    = "Usage: droverctl snapshot SUBCOMMAND [ARGS...]\n"
      "\n"
      "  create VM NAME [--memory] [--quiesce] [--description TEXT] "
      "[--detach] [--json]\n"
      "  list VM [--json]\n"
      "  show VM NAME [--json]\n"
      "  revert VM NAME [--paused] [--detach] [--json]\n"
      "  delete VM NAME [--detach] [--json]\n"
      "\n"
      "Snapshot names follow the VM name rules: 1-63 characters of "
      "[a-z0-9-].\n";

/* Parses the options of the verb that USAGE ("snapshot SUB PARAMS")
 * describes, then checks that *ARGV holds exactly a VM name and, if
 * WANT_SNAPSHOT, a snapshot name. Returns -1 to go on (*ARGC, *ARGV
 * reduced to the positional arguments), or the exit code to return. */
static int
snapshot_parse (const char *usage, const char *summary,
                const GOptionEntry *entries, gboolean want_snapshot, int *argc,
                char ***argv)
{
  g_autoptr (GError) error = NULL;
  int want = want_snapshot ? 3 : 2;
  char **args;
  int rc;

  if ((rc = ctl_parse_usage (usage, summary, entries, argc, argv)) >= 0)
    return rc;
  args = *argv;
  if (*argc < 2)
    return ctl_usage_error (usage, "missing VM name");
  if (*argc < want)
    return ctl_usage_error (usage, "missing snapshot name");
  if (*argc > want)
    return ctl_usage_error (usage, "unexpected argument '%s'", args[want]);
  if (!proto_name_validate ("VM", args[1], &error)
      || (want_snapshot && !proto_name_validate ("snapshot", args[2], &error)))
    return ctl_usage_error (usage, "%s", error->message);
  return -1;
}

int
ctl_start_storage_job (Ctl *ctl, guint method, const ProtobufCMessage *request,
                       const char *what, gboolean detach, gboolean json)
{
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__Job *job;

  msg = ctl_call (ctl, method, request, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  job = (const Drover__V1__Job *)msg;
  if (detach)
    {
      if (json)
        ctl_print_message_json (msg);
      else
        printf ("job %s: %s; follow it with: droverctl job watch %s\n", job->id,
                what, job->id);
      return CTL_EXIT_OK;
    }
  if (!json)
    {
      printf ("job %s: %s\n", job->id, what);
      fflush (stdout);
    }
  return ctl_watch_job (
      ctl, job->id,
      g_str_has_prefix (job->kind, "snapshot") ? "snapshot" : job->kind, json);
}

/* --- create ------------------------------------------------------------ */

#define CREATE_USAGE                                                           \
  "snapshot create VM NAME [--memory] [--quiesce] [--description TEXT] "       \
  "[--detach] [--json]"

static int
snapshot_create (Ctl *ctl, int argc, char **argv)
{
  gboolean memory = FALSE, quiesce = FALSE, detach = FALSE, json = FALSE;
  g_autofree char *description = NULL;
  const GOptionEntry entries[]
      = { { "memory", 0, 0, G_OPTION_ARG_NONE, &memory,
            "Save RAM and device state too (live): a revert resumes the "
            "guest where it was",
            NULL },
          { "quiesce", 0, 0, G_OPTION_ARG_NONE, &quiesce,
            "Freeze the guest's filesystems through the QEMU guest agent "
            "(fails if none answers)",
            NULL },
          { "description", 0, 0, G_OPTION_ARG_STRING, &description,
            "What it is for (at most 1 KiB)", "TEXT" },
          { "detach", 0, 0, G_OPTION_ARG_NONE, &detach,
            "Print the job and return at once", NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job as JSON", NULL },
          { NULL } };
  Drover__V1__CreateSnapshotRequest req
      = DROVER__V1__CREATE_SNAPSHOT_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autofree char *what = NULL;
  int rc = 0;

  if ((rc = snapshot_parse (
           CREATE_USAGE,
           "Take a snapshot of a VM, running or stopped: disk-only by "
           "default (an external qcow2 overlay, the guest keeps running), "
           "with --memory also its RAM and devices. Follows the job to the "
           "end; exit 0 when done, 1 if it failed (the VM then runs as "
           "before). Ctrl-C stops following, not the snapshot.",
           entries, TRUE, &argc, &argv))
      >= 0)
    return rc;
  if (!cli_snapshot_check_description (description, &error))
    return ctl_usage_error (CREATE_USAGE, "%s", error->message);
  req.vm = argv[1];
  req.name = argv[2];
  req.memory = memory;
  req.quiesce = quiesce;
  req.description = description ? description : (char *)"";
  what = g_strdup_printf ("snapshot %s of VM %s%s", argv[2], argv[1],
                          memory ? " (with memory)" : "");
  return ctl_start_storage_job (ctl, DROVER_SCHED_METHOD_CREATE_SNAPSHOT,
                                &req.base, what, detach, json);
}

/* --- revert, delete ---------------------------------------------------- */

static int
snapshot_revert_delete (Ctl *ctl, gboolean revert, int argc, char **argv)
{
  gboolean paused = FALSE, detach = FALSE, json = FALSE;
  const GOptionEntry revert_entries[]
      = { { "paused", 0, 0, G_OPTION_ARG_NONE, &paused,
            "Leave the VM paused after the revert", NULL },
          { "detach", 0, 0, G_OPTION_ARG_NONE, &detach,
            "Print the job and return at once", NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job as JSON", NULL },
          { NULL } };
  const GOptionEntry *entries = revert ? revert_entries : revert_entries + 1;
  const char *usage = revert ? "snapshot revert VM NAME [--paused] [--detach] "
                               "[--json]"
                             : "snapshot delete VM NAME [--detach] [--json]";
  Drover__V1__SnapshotRequest req = DROVER__V1__SNAPSHOT_REQUEST__INIT;
  g_autofree char *what = NULL;
  int rc = 0;

  if ((rc = snapshot_parse (
           usage,
           revert ? "Return a VM to a snapshot: its disks as they were then "
                    "and, for a memory snapshot, the guest resumed where it "
                    "was (no reboot). Later snapshots stay (a branch). "
                    "Follows the job; Ctrl-C stops following, not the revert."
                  : "Delete a snapshot, merging its data into what still "
                    "needs it (live, while the VM runs); no other snapshot "
                    "loses data. Follows the job; Ctrl-C stops following, "
                    "not the merge.",
           entries, TRUE, &argc, &argv))
      >= 0)
    return rc;
  req.vm = argv[1];
  req.name = argv[2];
  req.paused = paused;
  what = g_strdup_printf ("%s snapshot %s of VM %s",
                          revert ? "reverting to" : "deleting", argv[2],
                          argv[1]);
  return ctl_start_storage_job (ctl,
                                revert ? DROVER_SCHED_METHOD_REVERT_SNAPSHOT
                                       : DROVER_SCHED_METHOD_DELETE_SNAPSHOT,
                                &req.base, what, detach, json);
}

/* --- list, show -------------------------------------------------------- */

/* ListSnapshots of VM into *REPLY, or the exit code. */
static int
list_of (Ctl *ctl, const char *vm, ProtobufCMessage **reply)
{
  Drover__V1__ListSnapshotsRequest req
      = DROVER__V1__LIST_SNAPSHOTS_REQUEST__INIT;
  g_autoptr (GError) error = NULL;

  req.vm = (char *)vm;
  *reply = ctl_call (ctl, DROVER_SCHED_METHOD_LIST_SNAPSHOTS, &req.base, 0,
                     &error);
  if (*reply == NULL)
    return ctl_fail (error);
  return -1;
}

static int
snapshot_list (Ctl *ctl, int argc, char **argv)
{
  const char *usage = "snapshot list VM [--json]";
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
          { NULL } };
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autofree char *text = NULL;
  const Drover__V1__ListSnapshotsReply *reply;
  int rc = 0;

  if ((rc = snapshot_parse (
           usage,
           "List a VM's snapshots as a tree: children indented under their "
           "parent, the one the VM runs on now marked '*'.",
           entries, FALSE, &argc, &argv))
      >= 0)
    return rc;
  if ((rc = list_of (ctl, argv[1], &msg)) >= 0)
    return rc;
  if (json)
    {
      ctl_print_message_json (msg);
      return CTL_EXIT_OK;
    }
  reply = (const Drover__V1__ListSnapshotsReply *)msg;
  if (reply->n_snapshots == 0)
    {
      printf ("VM %s has no snapshots\n", argv[1]);
      return CTL_EXIT_OK;
    }
  text = cli_snapshot_tree (reply);
  fputs (text, stdout);
  return CTL_EXIT_OK;
}

/* "a, b, c" of the N names, or "(none)". A repeated field of protobuf-c
 * is N pointers with no NULL after them: g_strjoinv would read past the
 * end. */
static char *
join_names (char **names, size_t n)
{
  GString *text = g_string_new (NULL);

  for (size_t i = 0; i < n; i++)
    g_string_append_printf (text, "%s%s", i ? ", " : "", names[i]);
  if (n == 0)
    g_string_append (text, "(none)");
  return g_string_free (text, FALSE);
}

/* Width of the key column in the show output. */
#define KV_WIDTH 12

static int
snapshot_show (Ctl *ctl, int argc, char **argv)
{
  const char *usage = "snapshot show VM NAME [--json]";
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
          { NULL } };
  g_autoptr (ProtobufCMessage) msg = NULL;
  const Drover__V1__ListSnapshotsReply *reply;
  const Drover__V1__Snapshot *s = NULL;
  int rc = 0;

  if ((rc = snapshot_parse (usage, "Show one snapshot of a VM.", entries, TRUE,
                            &argc, &argv))
      >= 0)
    return rc;
  if ((rc = list_of (ctl, argv[1], &msg)) >= 0)
    return rc;
  reply = (const Drover__V1__ListSnapshotsReply *)msg;
  for (size_t i = 0; i < reply->n_snapshots; i++)
    if (g_str_equal (reply->snapshots[i]->name, argv[2]))
      s = reply->snapshots[i];
  if (s == NULL)
    {
      ctl_print_error ("VM '%s' has no snapshot '%s' (droverctl snapshot list "
                       "%s)",
                       argv[1], argv[2], argv[1]);
      return CTL_EXIT_FAILURE;
    }
  if (json)
    {
      ctl_print_message_json (&s->base);
      return CTL_EXIT_OK;
    }
  ctl_kv (KV_WIDTH, "name", s->name);
  ctl_kv (KV_WIDTH, "vm", argv[1]);
  ctl_kv (KV_WIDTH, "parent", s->parent[0] ? s->parent : "(none: a root)");
  ctl_kv_take (KV_WIDTH, "children", join_names (s->children, s->n_children));
  ctl_kv (KV_WIDTH, "current",
          s->current || g_str_equal (reply->current, s->name)
              ? "yes: the VM runs on it"
              : "no");
  ctl_kv_take (KV_WIDTH, "created", cli_format_time (s->created_ms));
  ctl_kv_take (KV_WIDTH, "size", proto_format_size (s->size_bytes));
  ctl_kv (KV_WIDTH, "memory",
          s->memory ? "yes: a revert resumes the guest" : "no");
  ctl_kv (KV_WIDTH, "quiesced", s->quiesced ? "yes" : "no");
  ctl_kv (KV_WIDTH, "vm-state", s->vm_state);
  ctl_kv (KV_WIDTH, "description", s->description);
  return CTL_EXIT_OK;
}

/* --- dispatch ---------------------------------------------------------- */

static int
snapshot_revert (Ctl *ctl, int argc, char **argv)
{
  return snapshot_revert_delete (ctl, TRUE, argc, argv);
}

static int
snapshot_delete (Ctl *ctl, int argc, char **argv)
{
  return snapshot_revert_delete (ctl, FALSE, argc, argv);
}

int
ctl_cmd_snapshot (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "create", snapshot_create }, { "list", snapshot_list },
    { "show", snapshot_show },     { "revert", snapshot_revert },
    { "delete", snapshot_delete }, { NULL, NULL },
  };

  return ctl_dispatch (ctl, "snapshot", snapshot_usage_text, commands, argc,
                       argv);
}
