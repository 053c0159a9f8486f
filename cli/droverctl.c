/* droverctl: the operator's command line. Talks only to the scheduler's
 * SchedulerService. main() parses the global options and hands the rest
 * to one function per verb (cli-hosts.c, cli-vm.c, cli-job.c,
 * cli-migrate.c, cli-snapshot.c). */
#include "droverctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_SCHEDULER "127.0.0.1:7400"
#define DEFAULT_TIMEOUT_S 200

static const char usage_text[]
    = "Usage: droverctl [GLOBAL OPTIONS] VERB [ARGS...]\n"
      "\n"
      "droverctl talks to the Drover scheduler, which places VMs on the "
      "hosts'\n"
      "agents, records every command as a job and live-migrates VMs.\n"
      "\n"
      "Global options (before the verb):\n"
      "  --scheduler ADDR   scheduler address (default $DROVER_SCHEDULER, "
      "else " DEFAULT_SCHEDULER ")\n"
      "  --tls-dir DIR      ca.pem, cert.pem, key.pem for mutual TLS (default "
      "$DROVER_TLS_DIR)\n"
      "  --insecure         talk to the scheduler without TLS (only to a "
      "scheduler\n"
      "                     started with --insecure)\n"
      "  --timeout SECONDS  deadline of each call (default 200)\n"
      "  --version          print droverctl's version and exit\n"
      "  -h, --help         this text\n"
      "\n"
      "Verbs:\n"
      "  hosts [--json]                      list hosts (state, load, "
      "accelerator)\n"
      "  host drain HOST [--wait] [--stop-unmovable] [--json]\n"
      "                                      move a host's running VMs away "
      "and put it\n"
      "                                      in maintenance\n"
      "  host undrain HOST [--json]          return a host to service\n"
      "  vm create NAME --vcpus N --memory SIZE [--disk SIZE] [--kernel K "
      "--initrd I\n"
      "            --cmdline C] [--image IMG [--cloud-init FILE]] [--net "
      "NET[,mac=MAC]]...\n"
      "            [--host H] [--accel kvm|tcg] [--json]\n"
      "                                      create and start a VM (a kernel, "
      "a disk or\n"
      "                                      an image is required)\n"
      "  vm list [--json]                    list VMs (unknown: its host is "
      "down)\n"
      "  vm show NAME [--json]               details and stats of one VM\n"
      "  vm start|destroy NAME               start it, or force it off\n"
      "  vm stop NAME [--force] [--timeout S]\n"
      "                                      shut it down (says if it had "
      "to be forced)\n"
      "  vm delete NAME [--force]            delete it and its disk\n"
      "  vm console NAME [-f] [--tail BYTES] print the serial console log\n"
      "  vm clone SRC NEW [--linked|--full] [--from-snapshot S] [--host H] "
      "[--start]\n"
      "          [--detach] [--json]\n"
      "                                      a new VM from SRC's disk (a "
      "template's\n"
      "                                      clones are linked by default)\n"
      "  vm template NAME [--json]           a stopped VM becomes a template "
      "(never\n"
      "                                      started, cloned)\n"
      "  vm nic add VM NETWORK [--mac MAC]   hot-plug a NIC (vm create "
      "--net at boot)\n"
      "  vm nic remove VM MAC|NETWORK        unplug a NIC\n"
      "  vm label NAME KEY=VALUE... KEY-... [--json]\n"
      "                                      set and remove labels (schedules "
      "select by them)\n"
      "  vm set NAME --migration-postcopy auto|never [--json]\n"
      "                                      change a VM's settings\n"
      "  snapshot create VM NAME [--memory] [--quiesce] [--description "
      "TEXT]\n"
      "          [--detach] [--json]         take a snapshot (disk-only by "
      "default)\n"
      "  snapshot list VM [--json]           the VM's snapshot tree ('*': "
      "current)\n"
      "  snapshot show VM NAME [--json]      one snapshot\n"
      "  snapshot revert VM NAME [--paused] [--detach] [--json]\n"
      "                                      go back to a snapshot\n"
      "  snapshot delete VM NAME [--detach] [--json]\n"
      "                                      delete one, merging its data "
      "live\n"
      "  jobs [--json]                       list jobs (create, delete, "
      "start, stop,\n"
      "                                      destroy, migrate, snapshot-*, "
      "clone, backup, ...)\n"
      "  job watch ID [--json]               follow a job until it ends\n"
      "  job cancel ID [--json]              cancel a queued or running "
      "migration\n"
      "  migrate VM [--to HOST] [--max-downtime MS] [--bandwidth MBIT]\n"
      "          [--compress auto|on|off] [--timeout-per-gib S] "
      "[--stall-rounds N]\n"
      "          [--max-throttle PCT] [--no-throttle] [--postcopy "
      "auto|never|now]\n"
      "          [--strict] [--json]\n"
      "                                      live-migrate a running VM and "
      "follow it;\n"
      "                                      Ctrl-C stops following, not the "
      "migration\n"
      "  schedule create NAME --select S --action snapshot|backup\n"
      "          (--every D | --at CAL) [--keep-last N ...] [--json]\n"
      "                                      a disaster-recovery schedule\n"
      "  schedule list|show|pause|resume|delete|run-now [NAME] [--json]\n"
      "  schedule drill NAME [--vm VM] [--json]\n"
      "                                      restore the newest backup into a "
      "scratch VM\n"
      "                                      and wait until it is ready\n"
      "  backup create VM [--repo R] [--full] [--detach] [--json]\n"
      "                                      back up a VM (incremental when it "
      "can be)\n"
      "  backup list [VM] | show ID [--repo R] [--json]\n"
      "  backup restore ID --as NEW [--host H] [--start] | --in-place [--repo "
      "R]\n"
      "                                      restore as a new VM or over the "
      "VM itself\n"
      "  backup verify [ID... | --all] | prune VM --keep-... [--dry-run] "
      "[--json]\n"
      "                                      rehash chunks; apply retention\n"
      "  repo add NAME PATH | list | status NAME | gc NAME [--wait] [--json]\n"
      "                                      backup repositories\n"
      "  dr report [--json]                  each scheduled VM's last good "
      "copy\n"
      "                                      against its RPO (exit 1: "
      "outside)\n"
      "  network create NAME --bridge BR [--vlan ID] [--mtu N] [--json]\n"
      "                                      a network: a bridge the hosts "
      "provide\n"
      "  network list|show|delete [NAME] [--json]\n"
      "  image import NAME FILE [--host H] [--format F]\n"
      "                                      a bootable disk image (qcow2 or "
      "raw) on the hosts\n"
      "  image list|show|delete [NAME] [--json]\n"
      "  events [-f] [-n N] [--json]         the cluster's events (last N, "
      "then follow)\n"
      "  dashboard-token [--ttl S]           one-time login for the web "
      "dashboard\n"
      "  balance plan|status [--json]        the moves the balancer would "
      "make now;\n"
      "                                      its mode, imbalance and last "
      "moves\n"
      "  balance apply [--wait] [--json]     carry out a fresh plan\n"
      "  balance mode off|recommend|auto     set the balancer's mode\n"
      "\n"
      "Roles: viewers may list, show, watch and read consoles; changes need "
      "an\n"
      "operator certificate (--tls-dir).\n"
      "Sizes: bytes or a number with K, M, G or T (binary units): 512M, 1.5G.\n"
      "Exit codes: 0 done, 1 the scheduler (or the job) said no, 2 bad "
      "command line.\n"
      "Run 'droverctl VERB --help' for a verb's options; 'man droverctl' for "
      "more.\n";

static void print_error_va (const char *format, va_list ap)
    G_GNUC_PRINTF (1, 0);
static void
print_error_va (const char *format, va_list ap)
{
  g_autofree char *msg = g_strdup_vprintf (format, ap);

  fflush (stdout);
  fprintf (stderr, "droverctl: error: %s\n", msg);
}

void
ctl_print_error (const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  print_error_va (format, ap);
  va_end (ap);
}

int
ctl_usage_error (const char *usage, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  print_error_va (format, ap);
  va_end (ap);
  if (usage != NULL)
    fprintf (stderr, "Usage: droverctl %s\n", usage);
  else
    fprintf (stderr,
             "Usage: droverctl [--scheduler ADDR] [--tls-dir DIR | --insecure] "
             "[--timeout S] hosts|vm|snapshot|jobs|job|migrate ...\n");
  fprintf (stderr, "Run 'droverctl --help' for usage.\n");
  return CTL_EXIT_USAGE;
}

int
ctl_fail (const GError *error)
{
  ctl_print_error ("%s", error->message);
  if (error->domain == CLI_ERROR || error->domain == G_OPTION_ERROR)
    return CTL_EXIT_USAGE;
  return CTL_EXIT_FAILURE;
}

int
ctl_parse_options (const char *verb, const char *params, const char *summary,
                   const GOptionEntry *entries, int *argc, char ***argv)
{
  g_autoptr (GOptionContext) octx = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *prog = g_strdup_printf ("%s %s", verb, params);

  octx = g_option_context_new (prog);
  g_option_context_set_summary (octx, summary);
  if (entries != NULL)
    g_option_context_add_main_entries (octx, entries, NULL);
  /* argv[0] is the verb; GOption skips it as the program name. */
  if (!g_option_context_parse (octx, argc, argv, &error))
    return ctl_usage_error (prog, "%s", error->message);
  return -1;
}

int
ctl_parse_options_only (const char *verb, const char *params,
                        const char *summary, const GOptionEntry *entries,
                        int argc, char **argv)
{
  g_autofree char *usage = g_strdup_printf ("%s %s", verb, params);
  int rc;

  if ((rc = ctl_parse_options (verb, params, summary, entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc > 1)
    return ctl_usage_error (usage, "unexpected argument '%s'", argv[1]);
  return -1;
}

int
ctl_parse_json_only (const char *verb, const char *summary, int argc,
                     char **argv, gboolean *json)
{
  const GOptionEntry entries[]
      = { { "json", 0, 0, G_OPTION_ARG_NONE, json, "Print JSON", NULL },
          { NULL } };

  return ctl_parse_options_only (verb, "[--json]", summary, entries, argc,
                                 argv);
}

ProtoClient *
ctl_client (Ctl *ctl, GError **error)
{
  g_autoptr (ProtoTls) tls = NULL;

  if (ctl->client != NULL)
    return ctl->client;
  if (ctl->tls_dir == NULL && !ctl->insecure)
    {
      /* Never fall back to plaintext silently. */
      g_set_error (error, CLI_ERROR, CLI_ERROR_USAGE,
                   "no TLS material: pass --tls-dir DIR or set DROVER_TLS_DIR, "
                   "or --insecure");
      return NULL;
    }
  if (ctl->tls_dir != NULL)
    {
      tls = proto_tls_load (ctl->tls_dir, error);
      if (tls == NULL)
        {
          g_prefix_error (error, "TLS material in %s: ", ctl->tls_dir);
          return NULL;
        }
    }
  proto_init ();
  ctl->client = proto_client_new (ctl->scheduler, tls, PROTO_ROLE_SCHEDULER,
                                  NULL, error);
  if (ctl->client == NULL)
    g_prefix_error (error, "scheduler %s: ", ctl->scheduler);
  return ctl->client;
}

void
ctl_hint_transport (const Ctl *ctl, GError *error)
{
  const char *hint
      = cli_transport_hint (ctl->insecure, error->code, error->message);

  if (hint != NULL)
    {
      char *with = g_strdup_printf ("%s\n  hint: %s", error->message, hint);

      g_free (error->message);
      error->message = with;
    }
}

ProtobufCMessage *
ctl_call (Ctl *ctl, guint method, const ProtobufCMessage *request,
          gint64 timeout_ms, GError **error)
{
  ProtoClient *client = ctl_client (ctl, error);
  ProtobufCMessage *reply;
  gint64 deadline = (gint64)ctl->timeout_s * 1000;

  if (client == NULL)
    return NULL;
  reply = proto_client_call_sync (client, DROVER_SCHED_SERVICE, method, request,
                                  MAX (deadline, timeout_ms), error);
  if (reply == NULL && error != NULL && *error != NULL
      && (*error)->domain == PROTO_ERROR
      && ((*error)->code == PROTO_STATUS_UNAVAILABLE
          || (*error)->code == PROTO_STATUS_DEADLINE_EXCEEDED))
    {
      /* Say where we tried to go: the bare gRPC text does not. */
      g_prefix_error (error, "scheduler %s: ", ctl->scheduler);
      ctl_hint_transport (ctl, *error);
    }
  return reply;
}

void
ctl_print_json (ProtoJson *json)
{
  fputs (proto_json_get (json), stdout);
}

void
ctl_print_message_json (const ProtobufCMessage *msg)
{
  g_autoptr (ProtoJson) json = proto_json_new (TRUE);

  proto_json_message (json, msg);
  ctl_print_json (json);
}

int
ctl_list (Ctl *ctl, const char *verb, const char *summary, guint method,
          const ProtobufCMessage *request, int argc, char **argv,
          ProtobufCMessage **reply)
{
  gboolean json = FALSE;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc = ctl_parse_json_only (verb, summary, argc, argv, &json)) >= 0)
    return rc;
  msg = ctl_call (ctl, method, request, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  if (json)
    {
      ctl_print_message_json (msg);
      return CTL_EXIT_OK;
    }
  *reply = g_steal_pointer (&msg);
  return -1;
}

const CtlCommand *
ctl_command_find (const CtlCommand *commands, const char *name)
{
  for (const CtlCommand *c = commands; c->name != NULL; c++)
    if (g_str_equal (c->name, name))
      return c;
  return NULL;
}

int
ctl_dispatch (Ctl *ctl, const char *verb, const char *usage_text,
              const CtlCommand *commands, int argc, char **argv)
{
  const CtlCommand *command;
  const char *sub;

  if (argc < 2)
    {
      fputs (usage_text, stderr);
      return ctl_usage_error (NULL, "missing %s subcommand", verb);
    }
  sub = argv[1];
  if (g_str_equal (sub, "--help") || g_str_equal (sub, "-h")
      || g_str_equal (sub, "help"))
    {
      fputs (usage_text, stdout);
      return CTL_EXIT_OK;
    }
  command = ctl_command_find (commands, sub);
  if (command == NULL)
    {
      fputs (usage_text, stderr);
      return ctl_usage_error (NULL, "unknown %s subcommand '%s'", verb, sub);
    }
  /* From here the subcommand plays argv[0]. */
  return command->run (ctl, argc - 1, argv + 1);
}

void
ctl_kv (int width, const char *key, const char *value)
{
  printf ("%-*s %s\n", width, key, value != NULL && *value ? value : "-");
}

void
ctl_kv_take (int width, const char *key, char *value)
{
  ctl_kv (width, key, value);
  g_free (value);
}

int
ctl_print_table (CliTable *table)
{
  g_autofree char *text = cli_table_render (table);

  fputs (text, stdout);
  return CTL_EXIT_OK;
}

char *
ctl_format_age (gint64 ms)
{
  gint64 s;

  if (ms <= 0)
    return g_strdup ("-");
  s = (proto_now_ms () - ms) / 1000;
  if (s < 0)
    s = 0;
  if (s < 120)
    return g_strdup_printf ("%" G_GINT64_FORMAT "s", s);
  if (s < 120 * 60)
    return g_strdup_printf ("%" G_GINT64_FORMAT "m", s / 60);
  if (s < 48 * 3600)
    return g_strdup_printf ("%" G_GINT64_FORMAT "h", s / 3600);
  return g_strdup_printf ("%" G_GINT64_FORMAT "d", s / 86400);
}

static const char *
env_or (const char *name, const char *fallback)
{
  const char *v = g_getenv (name);
  return v != NULL && *v != '\0' ? v : fallback;
}

int
main (int argc, char **argv)
{
  g_autofree char *scheduler = NULL;
  g_autofree char *tls_dir = NULL;
  gboolean insecure = FALSE;
  gboolean help = FALSE;
  gboolean version = FALSE;
  int timeout_s = DEFAULT_TIMEOUT_S;
  GOptionEntry entries[]
      = { { "scheduler", 0, 0, G_OPTION_ARG_STRING, &scheduler,
            "Scheduler address", "ADDR" },
          { "tls-dir", 0, 0, G_OPTION_ARG_FILENAME, &tls_dir, "TLS directory",
            "DIR" },
          { "insecure", 0, 0, G_OPTION_ARG_NONE, &insecure, "No TLS", NULL },
          { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "Call deadline",
            "SECONDS" },
          { "help", 'h', 0, G_OPTION_ARG_NONE, &help, "Show help", NULL },
          { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Show the version",
            NULL },
          { NULL } };
  g_autoptr (GOptionContext) octx = g_option_context_new ("VERB [ARGS...]");
  g_autoptr (GError) error = NULL;
  static const CtlCommand verbs[] = {
    { "hosts", ctl_cmd_hosts },
    { "host", ctl_cmd_host },
    { "vm", ctl_cmd_vm },
    { "jobs", ctl_cmd_jobs },
    { "job", ctl_cmd_job },
    { "migrate", ctl_cmd_migrate },
    { "snapshot", ctl_cmd_snapshot },
    { "events", ctl_cmd_events },
    { "dashboard-token", ctl_cmd_dashboard_token },
    { "backup", ctl_cmd_backup },
    { "repo", ctl_cmd_repo },
    { "balance", ctl_cmd_balance },
    { "schedule", ctl_cmd_schedule },
    { "dr", ctl_cmd_dr },
    { "network", ctl_cmd_network },
    { "image", ctl_cmd_image },
    { NULL, NULL },
  };
  Ctl ctl = { 0 };
  const CtlCommand *verb;
  int rc;

  /* Stop at the verb: its options are its own. Our own --help replaces
   * GOption's, which would list nothing useful about verbs. */
  g_option_context_set_strict_posix (octx, TRUE);
  g_option_context_set_help_enabled (octx, FALSE);
  g_option_context_add_main_entries (octx, entries, NULL);
  if (!g_option_context_parse (octx, &argc, &argv, &error))
    return ctl_usage_error (NULL, "%s", error->message);
  if (version)
    {
      printf ("droverctl %s\n", DROVER_VERSION);
      return CTL_EXIT_OK;
    }
  if (help || (argc >= 2 && g_str_equal (argv[1], "help")))
    {
      fputs (usage_text, stdout);
      return CTL_EXIT_OK;
    }
  if (argc < 2)
    return ctl_usage_error (NULL, "no verb given");
  if (timeout_s <= 0)
    return ctl_usage_error (NULL,
                            "--timeout must be a positive number of seconds");
  if (tls_dir != NULL && insecure)
    return ctl_usage_error (NULL,
                            "--tls-dir and --insecure exclude each other");

  ctl.scheduler = g_strdup (
      scheduler ? scheduler : env_or ("DROVER_SCHEDULER", DEFAULT_SCHEDULER));
  ctl.insecure = insecure;
  /* An explicit --insecure beats $DROVER_TLS_DIR. */
  if (!insecure)
    ctl.tls_dir
        = g_strdup (tls_dir ? tls_dir : env_or ("DROVER_TLS_DIR", NULL));
  ctl.timeout_s = timeout_s;

  /* Verbs see argv[0] = the verb, like a program of their own. */
  verb = ctl_command_find (verbs, argv[1]);
  if (verb == NULL)
    rc = ctl_usage_error (NULL, "unknown verb '%s'", argv[1]);
  else
    rc = verb->run (&ctl, argc - 1, argv + 1);

  fflush (stdout);
  if (ctl.client != NULL)
    {
      proto_client_free (ctl.client);
      proto_shutdown ();
    }
  g_free (ctl.scheduler);
  g_free (ctl.tls_dir);
  return rc;
}
