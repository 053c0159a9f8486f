/* Image files from one agent to another over the agents' channel.
 *
 * A transfer carries a short sequence of read-only files (images of a
 * snapshot chain, memory state files, a clone's image) on one channel
 * stream of kind MIG_CHANNEL_KIND_IMAGE, with the channel's TLS, CRC and
 * adaptive lz4. Each file travels under a LABEL (a bare file name, e.g.
 * "3.qcow2" or "s1.mem"), never a path: the receiving agent decides
 * where each file goes (AgentImageXferSink.place builds the path from
 * the label it validated) and how big it may be.
 *
 * Wire format (inside the channel's byte stream, little endian):
 *   sender -> receiver, per file: "DIXF" u32 | version u8 (1) | type u8
 *     (1 file) | label_len u16 | size u64 | label | SIZE bytes
 *   then the end: same header with type 2, label_len 0, size = files sent.
 *   receiver -> sender, once: status u8 (0 ok, 1 refused) | msg_len u16 |
 *     msg (why it refused).
 * The receiver answers only once every file is written and fsynced; a
 * stream that stops early (sender killed, channel cut) is refused and
 * leaves nothing.
 *
 * On the receiver every file PATH is written after its mark
 * PATH.incoming (agent_disks_incoming_mark: the agent-disks.c pattern),
 * and the marks stay when the transfer succeeds: the caller removes them
 * (agent_image_xfer_keep) once the operation that wanted the files is
 * decided, or removes files and marks (agent_image_xfer_discard). An
 * agent killed in between finds the marks at start.
 */
#pragma once

#include <gio/gio.h>

#include "mig-channel.h"

G_BEGIN_DECLS

typedef struct _Agent Agent;

#define AGENT_IMAGE_XFER_LABEL_MAX 128 /* bytes of a label */
#define AGENT_IMAGE_XFER_FILES_MAX 1024

/* One file to send: LABEL (what the receiver sees) and the local PATH
 * (read here, never sent). */
typedef struct
{
  const char *label;
  const char *path;
} AgentImageXferFile;

/* Bytes sent so far out of TOTAL (sizes of every file), from the sending
 * thread. */
typedef void (*AgentImageXferProgressFunc) (guint64 sent, guint64 total,
                                            gpointer user_data);

/* TRUE for a label a file may travel under: 1..AGENT_IMAGE_XFER_LABEL_MAX
 * bytes of [A-Za-z0-9._-], not starting with '.', without "..". */
gboolean agent_image_xfer_label_valid (const char *label);

/* --- sender ----------------------------------------------------------- */

/* Sends the N FILES over FD (a connected stream socket, not closed), then
 * reads the receiver's answer. Each file's size is taken when it is
 * opened and must not change while it is read. FALSE with the
 * receiver's refusal or the I/O error. Blocks. */
gboolean agent_image_xfer_write (int fd, const AgentImageXferFile *files,
                                 guint n, GCancellable *cancellable,
                                 AgentImageXferProgressFunc progress,
                                 gpointer user_data, GError **error);

/* Opens an image stream to the agent listening at ADDRESS ("ip:port",
 * the channel_address its prepare call returned) with TOKEN, and sends
 * FILES with agent_image_xfer_write (). With CREDS (the agent's
 * tls->mig_creds) the listener's certificate must be host DEST_HOST's;
 * CREDS NULL: plain TCP (tests). COMPRESS: MIG_COMPRESS_AUTO normally.
 * *WIRE_BYTES (nullable) gets the bytes the channel sent. */
gboolean agent_image_xfer_send (MigChannelCreds *creds, const char *address,
                                const char *dest_host, const char *token,
                                MigCompressMode compress,
                                const AgentImageXferFile *files, guint n,
                                GCancellable *cancellable,
                                AgentImageXferProgressFunc progress,
                                gpointer user_data, guint64 *wire_bytes,
                                GError **error);

/* --- receiver --------------------------------------------------------- */

/* Where the file LABEL (already checked by agent_image_xfer_label_valid)
 * of SIZE bytes goes: an absolute path the receiver builds itself from
 * what it parsed and validated in LABEL, or NULL with ERROR to refuse the
 * file (and the whole transfer). It may make the directory. */
typedef char *(*AgentImageXferPlaceFunc) (const char *label, guint64 size,
                                          gpointer user_data, GError **error);

/* The transfer of JOB_ID ended: PATHS (each written, fsynced and still
 * marked) or ERROR (nothing of it is left). Runs on the receiving thread,
 * before the sender is answered. PATHS is borrowed. */
typedef void (*AgentImageXferDoneFunc) (const char *job_id,
                                        const GPtrArray *paths,
                                        const GError *error,
                                        gpointer user_data);

/* Every file of the transfer of JOB_ID is written and fsynced (PATHS,
 * borrowed, still marked): the receiver's last word before the sender is
 * answered. FALSE with ERROR refuses the transfer after all (the files
 * and marks are removed, done reports ERROR). */
typedef gboolean (*AgentImageXferFinishFunc) (const char *job_id,
                                              const GPtrArray *paths,
                                              gpointer user_data,
                                              GError **error);

typedef struct
{
  AgentImageXferPlaceFunc place;
  guint max_files;   /* 0 = AGENT_IMAGE_XFER_FILES_MAX */
  guint64 max_bytes; /* all files together; 0 = no cap but the disk's */
  const char *what;  /* for messages: "VM vm1", "clone c2" */
  AgentImageXferFinishFunc finish; /* nullable */
  AgentImageXferDoneFunc done;     /* nullable */
  gpointer user_data;
  GDestroyNotify destroy; /* of USER_DATA, nullable */
} AgentImageXferSink;

/* Reads one transfer from FD (not closed) and writes its files where
 * SINK places them (each after its mark holding JOB_ID, with O_EXCL:
 * nothing is overwritten; holes for blocks of zeros; fsynced with their
 * directories), checking label, count, sizes and free space before
 * writing; answers the sender. Returns the paths written (still marked)
 * or NULL with ERROR, having removed every file and mark it made. */
GPtrArray *agent_image_xfer_read (int fd, const char *job_id,
                                  const AgentImageXferSink *sink,
                                  GError **error);

/* Removes the marks of PATHS (the files stay: their operation is done). */
void agent_image_xfer_keep (const GPtrArray *paths);
/* Removes the files of PATHS and then their marks. */
void agent_image_xfer_discard (const GPtrArray *paths);
/* Removes PATH and then its mark when PATH.incoming exists (a transfer
 * cut short by the agent's death); TRUE if it did. */
gboolean agent_image_xfer_reclaim (const char *path);

/* --- the receiving agent (agent-image-xfer-dst.c) --------------------- */

/* Expects the image stream of JOB_ID (a job id, mig_job_id_valid) from
 * SOURCE_HOST (with TLS only its host certificate may open it; NULL: any
 * peer) within TTL_MS: *TOKEN and *CHANNEL_ADDRESS are what the sender
 * passes to agent_image_xfer_send (). SINK is copied; its done runs once
 * the stream has come (or never: see agent_image_xfer_forget). */
gboolean agent_image_xfer_expect (Agent *agent, const char *job_id,
                                  const char *source_host,
                                  const AgentImageXferSink *sink, guint ttl_ms,
                                  char **token, char **channel_address,
                                  GError **error);
/* Registers SINK for the image stream of JOB_ID without issuing a token:
 * for a live migration, whose token admits the image stream too. */
gboolean agent_image_xfer_register (Agent *agent, const char *job_id,
                                    const AgentImageXferSink *sink,
                                    GError **error);
/* Forgets JOB_ID: closes its stream (a transfer still running fails and
 * removes its files, its done reporting the error) and waits for its
 * receiving thread; frees the sink's user data. Files of a transfer that
 * succeeded are the caller's. An unknown job is fine. Not from done. */
void agent_image_xfer_forget (Agent *agent, const char *job_id);

G_END_DECLS
