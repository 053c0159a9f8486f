/* droverctl internals shared by the per-verb files. */
#pragma once

#include "cli.h"
#include "proto.h"

/* Exit codes. */
enum
{
  CTL_EXIT_OK = 0,
  CTL_EXIT_FAILURE = 1, /* the scheduler (or the connection) said no */
  CTL_EXIT_USAGE = 2,   /* the command line is wrong */
};

/* Global options and the lazily opened connection. */
typedef struct
{
  char *scheduler; /* host:port */
  char *tls_dir;   /* NULL with insecure */
  gboolean insecure;
  int timeout_s; /* per-call deadline */
  ProtoClient *client;
} Ctl;

/* Prints "droverctl: error: MESSAGE" on stderr. */
void ctl_print_error (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* Prints a usage error and a hint; returns CTL_EXIT_USAGE. */
int ctl_usage_error (const char *usage, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

/* Prints ERROR and returns the exit code it deserves (2 for usage errors,
 * 1 otherwise). */
int ctl_fail (const GError *error);

/* Parses verb options with ENTRIES. Returns -1 when parsing succeeded (the
 * caller goes on with *ARGC/ *ARGV reduced to the positional arguments,
 * ARGV[0] being the verb), or the exit code to return at once. */
int ctl_parse_options (const char *verb, const char *params,
                       const char *summary, const GOptionEntry *entries,
                       int *argc, char ***argv);

/* ctl_parse_options for the subcommand that USAGE ("VERB SUB PARAMS...")
 * describes: "VERB SUB" is the verb, the rest (maybe none) its params
 * (cli-usage.c). Same return. */
int ctl_parse_usage (const char *usage, const char *summary,
                     const GOptionEntry *entries, int *argc, char ***argv);

/* ctl_parse_options for a verb that takes options only: a positional
 * argument is a usage error ("VERB PARAMS" its usage). */
int ctl_parse_options_only (const char *verb, const char *params,
                            const char *summary, const GOptionEntry *entries,
                            int argc, char **argv);

/* ctl_parse_options_only for a verb whose one option is --json (into
 * *JSON): "VERB [--json]". */
int ctl_parse_json_only (const char *verb, const char *summary, int argc,
                         char **argv, gboolean *json);

/* One blocking call to the scheduler, with the --timeout deadline (or
 * TIMEOUT_MS if larger). Connects on first use. The reply is freed by
 * the caller (g_autoptr (ProtobufCMessage)). */
ProtobufCMessage *ctl_call (Ctl *ctl, guint method,
                            const ProtobufCMessage *request, gint64 timeout_ms,
                            GError **error);

/* Appends to ERROR (a failed call's) a hint when the transport is the
 * likely cause (cli_transport_hint). */
void ctl_hint_transport (const Ctl *ctl, GError *error);

/* The connection (for streaming calls), opened on first use. */
ProtoClient *ctl_client (Ctl *ctl, GError **error);

/* Prints JSON held in JSON to stdout. */
void ctl_print_json (ProtoJson *json);
void ctl_print_message_json (const ProtobufCMessage *msg);

/* Calls METHOD with REQUEST (ctl_call, the --timeout deadline) into
 * *REPLY, which the caller frees (also on return); with JSON prints the
 * reply as JSON (cli-call.c). Returns -1 to go on with *REPLY (the
 * caller prints it as text), or the exit code to return at once: the
 * call's failure, or CTL_EXIT_OK once the JSON is printed. */
int ctl_call_json (Ctl *ctl, guint method, const ProtobufCMessage *request,
                   gboolean json, ProtobufCMessage **reply);

/* The common part of every listing verb (VERB takes no arguments but
 * [--json]): parses the options, calls METHOD with REQUEST and, with
 * --json, prints the reply as JSON. Returns -1 with *REPLY set when the
 * caller should print its table (ctl_print_table), else the exit code to
 * return at once. */
int ctl_list (Ctl *ctl, const char *verb, const char *summary, guint method,
              const ProtobufCMessage *request, int argc, char **argv,
              ProtobufCMessage **reply);

/* One subcommand of a verb (vm, snapshot, ...) or one verb: its name and
 * what runs it, with ARGV[0] the subcommand itself. */
typedef struct
{
  const char *name;
  int (*run) (Ctl *ctl, int argc, char **argv);
} CtlCommand;

/* The entry named NAME in COMMANDS (ended by a NULL name), or NULL. */
const CtlCommand *ctl_command_find (const CtlCommand *commands,
                                    const char *name);

/* Runs VERB's subcommand ARGV[1] from COMMANDS. "help", "-h" and "--help"
 * print USAGE_TEXT on stdout; a missing or unknown subcommand prints it on
 * stderr and is a usage error. */
int ctl_dispatch (Ctl *ctl, const char *verb, const char *usage_text,
                  const CtlCommand *commands, int argc, char **argv);

/* "KEY    VALUE" (VALUE "-" when empty), KEY padded to WIDTH: the lines of
 * the show verbs. ctl_kv_take frees VALUE. */
void ctl_kv (int width, const char *key, const char *value);
void ctl_kv_take (int width, const char *key, char *value);

/* Renders TABLE to stdout; returns CTL_EXIT_OK. */
int ctl_print_table (CliTable *table);

/* "12s", "5m", "3h", "2d" since MS (unix milliseconds); "-" if 0. */
char *ctl_format_age (gint64 ms);

/* Verbs. ARGV[0] is the verb itself. */
int ctl_cmd_hosts (Ctl *ctl, int argc, char **argv);
int ctl_cmd_host (Ctl *ctl, int argc, char **argv);
int ctl_cmd_vm (Ctl *ctl, int argc, char **argv);
/* droverctl vm nic add|remove (cli-vm-nic.c). */
int cli_vm_nic (Ctl *ctl, int argc, char **argv);
int cli_vm_set (Ctl *ctl, int argc, char **argv);
int ctl_cmd_jobs (Ctl *ctl, int argc, char **argv);
int ctl_cmd_job (Ctl *ctl, int argc, char **argv);
int ctl_cmd_migrate (Ctl *ctl, int argc, char **argv);
int ctl_cmd_snapshot (Ctl *ctl, int argc, char **argv);
int ctl_cmd_events (Ctl *ctl, int argc, char **argv);
int ctl_cmd_dashboard_token (Ctl *ctl, int argc, char **argv);
int ctl_cmd_backup (Ctl *ctl, int argc, char **argv);
int ctl_cmd_repo (Ctl *ctl, int argc, char **argv);
int ctl_cmd_balance (Ctl *ctl, int argc, char **argv);
int ctl_cmd_schedule (Ctl *ctl, int argc, char **argv);
int ctl_cmd_dr (Ctl *ctl, int argc, char **argv);
int ctl_cmd_network (Ctl *ctl, int argc, char **argv);
int ctl_cmd_image (Ctl *ctl, int argc, char **argv);

/* Follows job ID with WatchJob until it ends: one line per change, or for
 * a migration a progress bar (redrawn in place on a TTY, at most a line a
 * second otherwise) and a summary; JSON prints only the final Job as
 * JSON. Ctrl-C (or SIGTERM) ends droverctl with a note that the job (a
 * KIND: "migration", "job") goes on and how to follow or cancel it.
 * Returns the exit code: 0 done, 1 failed or the stream broke. */
int ctl_watch_job (Ctl *ctl, const char *id, const char *kind, gboolean json);

/* Calls METHOD (one that returns a Job: CreateSnapshot, RevertSnapshot,
 * DeleteSnapshot, CloneVm, DrainHost) with REQUEST; prints "job ID: WHAT" and
 * follows it with ctl_watch_job (a progress line), or with DETACH prints
 * the job and how to follow it and returns 0 at once. JSON: only the
 * final job (with DETACH: the job as started) as JSON. */
/* The summary a finished backup or restore job prints (cli-backup-ops.c):
 * the backup id, kind (and why a full one was full), consistency, bytes
 * read, new and stored, the time. Caller frees. */
char *ctl_backup_summary (const Drover__V1__Job *job);
int ctl_start_storage_job (Ctl *ctl, guint method,
                           const ProtobufCMessage *request, const char *what,
                           gboolean detach, gboolean json);
