/* droverctl's testable parts: size flags, a small JSON
 * emitter (with a generic protobuf-c message writer), aligned tables and
 * migration progress lines. Nothing here talks to the network. */
#pragma once

#include <glib.h>
#include <protobuf-c/protobuf-c.h>

#include "drover.pb-c.h"
#include "proto-json.h"

G_BEGIN_DECLS

#define CLI_ERROR (cli_error_quark ())
GQuark cli_error_quark (void);

typedef enum
{
  CLI_ERROR_USAGE, /* bad option value or argument: exit code 2 */
} CliError;

/* --- connection ------------------------------------------------------- */

/* A hint for a call that failed with gRPC status CODE and MESSAGE (may be
 * NULL), or NULL: a refused connection means nothing listens; a call
 * without TLS (INSECURE) that the server cut off reached a scheduler that
 * wants TLS (gRPC says only "Socket closed"); one with TLS may have
 * reached a plaintext one. Static text. */
const char *cli_transport_hint (gboolean insecure, int code,
                                const char *message);

/* --- sizes ------------------------------------------------------------- */

/* Parses a size flag with proto_parse_size ("512M", "1.5G", ...) and
 * refuses zero. Fails with CLI_ERROR_USAGE, naming WHAT. Sizes print with
 * proto_format_size. */
gboolean cli_parse_size (const char *what, const char *text, guint64 *out,
                         GError **error);

/* --- tables ------------------------------------------------------------ */

/* Rows of text cells printed with columns padded to their widest cell,
 * two spaces apart. Empty or NULL cells print as "-". */
typedef struct _CliTable CliTable;

/* HEADERS is a NULL-terminated array (copied). A header starting with '>'
 * marks a right-aligned (numeric) column; the '>' is not printed. */
CliTable *cli_table_new (const char *const *headers);
void cli_table_free (CliTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliTable, cli_table_free)

/* Adds a row of exactly as many cells as there are headers (copied). */
void cli_table_add_row (CliTable *table, const char *const *cells);
/* Same with the cells as arguments; takes ownership of each (char *,
 * g_free'd), which suits g_strdup_printf and proto_format_size results. */
void cli_table_add_take (CliTable *table, ...);

/* The whole table, header line first, each line ending in '\n', no
 * trailing spaces. Caller frees. */
char *cli_table_render (CliTable *table);

/* --- migration progress ------------------------------------------------ */

/* "12.0 MiB/s" (proto_format_size per second). Caller frees. */
char *cli_format_rate (double bytes_per_second);

/* "850ms", "8.2s", "1m05s", "2h03m"; "-" if negative or not finite. */
char *cli_format_duration (double seconds);

/* The dirty rate of P for people: "12.0 MiB/s", or "-" while QEMU has
 * not measured it (0 in the first round). Caller frees. */
char *cli_migration_dirty_text (const Drover__V1__MigrationProgress *p);

/* One line (no newline) for a migration job in flight, e.g.
 * "[######--------------]  30%  memory 307.2 MiB of 1.0 GiB done,
 * 120.0 MiB sent  round 2  dirty 12.0 MiB/s  sending 80.0 MiB/s  ETA
 * 8.2s". The bar (BAR_WIDTH cells, 0 = none) and the percentage show the
 * memory QEMU is done with (sent, or zero pages, and not dirtied again),
 * never 100 % before the migration completed; "sent" is what QEMU sent
 * of it. A VM with a disk shows the disk copy, first on its own while
 * the phase is preparing. A queued job shows "queued" and its message; a
 * job without migration progress its state and message. Caller frees. */
char *cli_migration_progress_line (const Drover__V1__Job *job, guint bar_width);

/* What droverctl prints on stderr when Ctrl-C interrupts it while it
 * follows job ID (a KIND: "migration", "job"): the job goes on, and the
 * commands that follow or cancel it. Into BUF (SIZE bytes, truncated). */
void cli_interrupt_text (const char *id, const char *kind, char *buf,
                         gsize size);

/* The cost model's prediction in one line. Caller frees. */
char *cli_migration_prediction (const Drover__V1__MigrationPrediction *pred);

/* The end of a migration job, several lines each ending in '\n': outcome,
 * total time, downtime (QEMU's), rounds, memory QEMU sent, for a VM with
 * a disk the disk copied and QEMU's total of both, and what the channel
 * took from QEMU and put on the wire (with lz4, how much smaller), each
 * against the prediction where there is one. Caller frees. */
char *cli_migration_summary (const Drover__V1__Job *job);

/* --- snapshots and clones (cli-storage.c) ------------------------------ */

/* Longest snapshot description the scheduler takes. */
#define CLI_SNAPSHOT_DESCRIPTION_MAX 1024

/* The CloneVmRequest mode for --linked / --full: "linked", "full", or ""
 * (neither: the scheduler's default, linked for a template and full
 * otherwise). Both is CLI_ERROR_USAGE. *MODE is static. */
gboolean cli_clone_mode (gboolean linked, gboolean full, const char **mode,
                         GError **error);

/* TEXT (NULL: none) is a description the scheduler takes: at most
 * CLI_SNAPSHOT_DESCRIPTION_MAX bytes of UTF-8; else CLI_ERROR_USAGE. */
gboolean cli_snapshot_check_description (const char *text, GError **error);

/* "2026-12-04 10:00:00" (local time) of unix MS; "-" for 0. Caller
 * frees. */
char *cli_format_time (gint64 ms);

/* REPLY's snapshots as a table (cli_table_render): NAME indented two
 * spaces per level under its parent (the reply lists parents first), the
 * current one marked "* ", then CREATED, SIZE, MEMORY (yes/no, and
 * whether quiesced), STATE (the VM's when taken) and DESCRIPTION (one
 * line, cut at 40 characters). Caller frees. */
char *cli_snapshot_tree (const Drover__V1__ListSnapshotsReply *reply);

/* One line (no newline) for a storage job (snapshot-*, clone) in flight:
 * the bar (BAR_WIDTH cells, 0 = none), the percentage (never 100 before
 * the job is over) and the job's message (the scheduler words the phase
 * and bytes), or its error once failed. Caller frees. */
char *cli_storage_progress_line (const Drover__V1__Job *job, guint bar_width);

G_END_DECLS
