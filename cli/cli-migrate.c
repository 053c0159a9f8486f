/* droverctl migrate: start a live migration and follow it to the end. */
#include "droverctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the migration knobs: a minute of downtime, a day per
 * GiB, a thousand stalled rounds are far past anything useful. */
#define CLI_MAX_DOWNTIME_MS 60000
#define CLI_MAX_TIMEOUT_PER_GIB_S 86400
#define CLI_MAX_STALL_ROUNDS 1000

/* Parses a whole number for OPTION from MIN to MAX (UNIT names what it
 * counts) into *OUT; TEXT NULL (not given) leaves *OUT alone. The wire
 * reads 0 as "the default", so an option whose MIN is 1 refuses 0 rather
 * than have it mean something the operator did not ask for. */
static gboolean
parse_count (const char *option, const char *text, guint64 min, guint64 max,
             const char *unit, guint64 *out, GError **error)
{
  guint64 value;

  if (text == NULL)
    return TRUE;
  if (!g_ascii_string_to_unsigned (text, 10, min, max, &value, NULL))
    {
      g_set_error (error, CLI_ERROR, CLI_ERROR_USAGE,
                   "%s: '%s' is not valid: give a whole number of %s from "
                   "%" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                   option, text, unit, min, max);
      return FALSE;
    }
  *out = value;
  return TRUE;
}

int
ctl_cmd_migrate (Ctl *ctl, int argc, char **argv)
{
  const char *usage = "migrate VM [--to HOST] [--max-downtime MS] "
                      "[--bandwidth MBIT] [--compress auto|on|off] "
                      "[--timeout-per-gib S] [--stall-rounds N] "
                      "[--max-throttle PCT] [--no-throttle] "
                      "[--postcopy auto|never|now] [--strict] [--json]";
  g_autofree char *to = NULL;
  g_autofree char *max_downtime = NULL;
  g_autofree char *bandwidth = NULL;
  g_autofree char *compress = NULL;
  g_autofree char *timeout_per_gib = NULL;
  g_autofree char *stall_rounds = NULL;
  g_autofree char *max_throttle = NULL;
  g_autofree char *postcopy = NULL;
  gboolean strict = FALSE, json = FALSE, no_throttle = FALSE;
  const GOptionEntry entries[]
      = { { "to", 0, 0, G_OPTION_ARG_STRING, &to,
            "Destination host (default: the scheduler picks one)", "HOST" },
          { "max-downtime", 0, 0, G_OPTION_ARG_STRING, &max_downtime,
            "Downtime limit the controller may raise to, 1-60000 (default "
            "500)",
            "MS" },
          { "bandwidth", 0, 0, G_OPTION_ARG_STRING, &bandwidth,
            "Rate limit on the migration channel, megabits per second "
            "(default: none)",
            "MBIT" },
          { "compress", 0, 0, G_OPTION_ARG_STRING, &compress,
            "lz4 on the channel: auto (default), on, off", "MODE" },
          { "timeout-per-gib", 0, 0, G_OPTION_ARG_STRING, &timeout_per_gib,
            "Abort after this many seconds per GiB of RAM (and disk), "
            "1-86400 (default 800)",
            "S" },
          { "stall-rounds", 0, 0, G_OPTION_ARG_STRING, &stall_rounds,
            "Force the switchover (pause the VM) after this many rounds "
            "in which the memory left did not fall, 1-1000 (default 3)",
            "N" },
          { "max-throttle", 0, 0, G_OPTION_ARG_STRING, &max_throttle,
            "Ceiling of the vCPU throttle the controller climbs to before "
            "it forces the switchover, 1-99 percent (default 80)",
            "PCT" },
          { "no-throttle", 0, 0, G_OPTION_ARG_NONE, &no_throttle,
            "Never throttle the vCPUs: a stall forces the switchover", NULL },
          { "postcopy", 0, 0, G_OPTION_ARG_STRING, &postcopy,
            "Post-copy: auto (instead of the forced pause, once the "
            "throttle is spent), never (forced pause), now (after the "
            "first full pass); default: the VM's setting (vm set "
            "--migration-postcopy), never without one",
            "MODE" },
          { "strict", 0, 0, G_OPTION_ARG_NONE, &strict,
            "Refuse if the cost model predicts no convergence", NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job (with progress and prediction) as JSON",
            NULL },
          { NULL } };
  Drover__V1__MigrateVmRequest req = DROVER__V1__MIGRATE_VM_REQUEST__INIT;
  Drover__V1__MigrationParams params = DROVER__V1__MIGRATION_PARAMS__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__Job *job;
  guint64 value = 0;
  int rc;

  if ((rc = ctl_parse_options (
           "migrate", usage + strlen ("migrate "),
           "Live-migrate a running VM (and its disk) and follow it; exit "
           "0 when it is done, 1 if it failed (the VM then "
           "runs on the source). Ctrl-C stops following, "
           "not the migration: 'droverctl job cancel ID' "
           "cancels it.",
           entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc < 2)
    return ctl_usage_error (usage, "missing VM name");
  if (argc > 2)
    return ctl_usage_error (usage, "unexpected argument '%s'", argv[2]);
  if (!proto_name_validate ("VM", argv[1], &error))
    return ctl_usage_error (usage, "%s", error->message);
  if (to != NULL && !proto_name_validate ("host", to, &error))
    return ctl_usage_error (usage, "--to: %s", error->message);
  if (compress != NULL && !g_str_equal (compress, "auto")
      && !g_str_equal (compress, "on") && !g_str_equal (compress, "off"))
    return ctl_usage_error (usage, "--compress must be auto, on or off");
  if (postcopy != NULL && !g_str_equal (postcopy, PROTO_MIG_POSTCOPY_AUTO)
      && !g_str_equal (postcopy, PROTO_MIG_POSTCOPY_NEVER)
      && !g_str_equal (postcopy, PROTO_MIG_POSTCOPY_NOW))
    return ctl_usage_error (usage, "--postcopy must be auto, never or now");

  if (!parse_count ("--max-downtime", max_downtime, 1, CLI_MAX_DOWNTIME_MS,
                    "milliseconds", &value, &error))
    return ctl_fail (error);
  params.max_downtime_ms = (guint32)value;
  value = 0;
  /* Megabits to bytes: 1 Mbit/s = 125000 B/s; 0 = no limit. */
  if (!parse_count ("--bandwidth", bandwidth, 0, G_MAXUINT64 / 125000,
                    "megabits per second (0 = no limit)", &value, &error))
    return ctl_fail (error);
  params.bandwidth_bps = value * 125000;
  value = 0;
  if (!parse_count ("--timeout-per-gib", timeout_per_gib, 1,
                    CLI_MAX_TIMEOUT_PER_GIB_S, "seconds", &value, &error))
    return ctl_fail (error);
  params.timeout_per_gib_s = (guint32)value;
  value = 0;
  if (!parse_count ("--stall-rounds", stall_rounds, 1, CLI_MAX_STALL_ROUNDS,
                    "rounds", &value, &error))
    return ctl_fail (error);
  params.stall_rounds = (guint32)value;
  value = 0;
  if (!parse_count ("--max-throttle", max_throttle, 1, 99, "percent", &value,
                    &error))
    return ctl_fail (error);
  if (no_throttle && max_throttle != NULL)
    return ctl_usage_error (usage, "--max-throttle and --no-throttle exclude "
                                   "each other");
  params.max_throttle_pct = (guint32)value;
  params.no_throttle = no_throttle;
  params.postcopy = postcopy ? postcopy : (char *)"";
  params.compress = compress ? compress : (char *)"";
  params.strict = strict;

  req.name = argv[1];
  req.to_host = to ? to : (char *)"";
  req.params = &params;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_MIGRATE_VM, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  job = (const Drover__V1__Job *)msg;
  if (!json)
    {
      printf ("job %s: migrating %s from %s to %s\n", job->id, job->vm,
              job->source_host, job->dest_host);
      if (job->prediction != NULL)
        {
          g_autofree char *pred = cli_migration_prediction (job->prediction);
          printf ("prediction: %s\n", pred);
        }
      fflush (stdout);
    }
  return ctl_watch_job (ctl, job->id, "migration", json);
}
