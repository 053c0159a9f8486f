/* The backup benchmark (issue 14): Drover's backup engine (the agent's
 * read loop over libnbd feeding the repository's writer) against
 * qemu-img convert, borg and restic, on one disk, in one run.
 *
 * The disk (2 GiB by default) is made from a seeded pattern of 1 MiB
 * blocks: half OS-like data (the files under /usr/lib, concatenated in
 * path order), a quarter random, a quarter zeros (whole 8 MiB groups, as
 * a filesystem leaves free space). It is written sparse as raw, turned
 * into qcow2 and exported read-only by qemu-nbd, as libvirt's pull-mode
 * backup exports a disk. Changes for the incrementals are runs of 4 to
 * 32 MiB (64 KiB aligned, new data of the same mix) written by qemu-io
 * while a persistent dirty bitmap records them; the incremental reads
 * that bitmap, as a backup of a running VM does.
 *
 * Everything is in the page cache (the machine has the memory): the
 * figures are CPU and fsync, not the disk's read speed, for all tools.
 *
 * Usage: bench-backup [--dir DIR] [--size-mib N] [--seed S] [--keep]
 * Targets (issue 14) are printed next to each ratio. */
#include <fcntl.h>
#include <glib/gstdio.h>
#include <lz4.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-backup-private.h"

#define MIB (1024 * 1024)
#define GROUP (8 * MIB)
#define UUID "6a1f6f43-3f3e-4b4e-9a0e-0c5d8f2b7a11"

typedef struct
{
  char *dir;
  guint64 size;
  guint64 seed;
} Bench;

static double
now_s (void)
{
  return g_get_monotonic_time () / 1e6;
}

static G_NORETURN void
die (const char *what, GError *error)
{
  fprintf (stderr, "bench-backup: %s: %s\n", what,
           error ? error->message : "failed");
  exit (1);
}

/* --- data ----------------------------------------------------------------- */

static guint64
rng (guint64 *s)
{
  /* xorshift64*: fast and seeded, for data that does not compress. */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * G_GUINT64_CONSTANT (2685821657736338717);
}

static void
fill_random (guint8 *buf, gsize len, guint64 *s)
{
  for (gsize i = 0; i + 8 <= len; i += 8)
    {
      guint64 v = rng (s);
      memcpy (buf + i, &v, 8);
    }
}

/* OS-like data: the regular files under /usr/lib, in path order, one
 * after the other (and again from the start when they run out). */
typedef struct
{
  GPtrArray *files;
  guint next;
  int fd;
} OsData;

static void
os_collect (const char *dir, GPtrArray *out)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (d && (name = g_dir_read_name (d)))
    g_ptr_array_add (names, g_build_filename (dir, name, NULL));
  g_ptr_array_sort (names, (GCompareFunc)g_strcmp0);
  for (guint i = 0; i < names->len; i++)
    {
      const char *path = g_ptr_array_index (names, i);
      GStatBuf st;

      if (g_lstat (path, &st) != 0)
        continue;
      if (S_ISDIR (st.st_mode))
        os_collect (path, out);
      else if (S_ISREG (st.st_mode) && st.st_size > 0)
        g_ptr_array_add (out, g_strdup (path));
    }
}

static void
os_read (OsData *os, guint8 *buf, gsize len)
{
  while (len > 0)
    {
      ssize_t n = os->fd >= 0 ? read (os->fd, buf, len) : 0;

      if (n > 0)
        {
          buf += n;
          len -= n;
          continue;
        }
      if (os->fd >= 0)
        close (os->fd);
      os->fd = open (g_ptr_array_index (os->files, os->next), O_RDONLY);
      os->next = (os->next + 1) % os->files->len;
    }
}

/* LEN bytes of the mix (2 OS : 1 random, by 1 MiB block) at BUF. */
static void
fill_mix (guint8 *buf, gsize len, OsData *os, guint64 *s)
{
  for (gsize off = 0; off < len; off += MIB)
    {
      gsize n = MIN (MIB, len - off);

      if (rng (s) % 3 == 0)
        fill_random (buf + off, n, s);
      else
        os_read (os, buf + off, n);
    }
}

/* Shuffles the N indices at V (seeded Fisher-Yates). */
static void
shuffle (guint64 *v, guint64 n, guint64 *s)
{
  for (guint64 i = n; i > 1; i--)
    {
      guint64 j = rng (s) % i, t = v[i - 1];

      v[i - 1] = v[j];
      v[j] = t;
    }
}

/* The raw disk at RAW: a quarter of the 8 MiB groups zero (left sparse),
 * the other groups' 1 MiB blocks two thirds OS-like, one third random. */
static void
make_disk (Bench *b, const char *raw, OsData *os)
{
  guint64 groups = b->size / GROUP, blocks = b->size / MIB, s = b->seed;
  g_autofree guint64 *g = g_new (guint64, groups);
  g_autofree guint64 *blk = g_new (guint64, blocks);
  g_autofree guint8 *zero_group = g_new0 (guint8, groups);
  g_autofree guint8 *random = g_new0 (guint8, blocks);
  g_autofree guint8 *buf = g_malloc (MIB);
  guint64 data = 0;
  int fd = open (raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);

  if (fd < 0 || ftruncate (fd, b->size) != 0)
    die ("cannot make the raw disk", NULL);
  for (guint64 i = 0; i < groups; i++)
    g[i] = i;
  shuffle (g, groups, &s);
  for (guint64 i = 0; i < groups / 4; i++)
    zero_group[g[i]] = 1;
  for (guint64 i = 0; i < blocks; i++)
    if (!zero_group[i * MIB / GROUP])
      blk[data++] = i;
  shuffle (blk, data, &s);
  for (guint64 k = 0; k < data / 3; k++)
    random[blk[k]] = 1;
  /* Written in disk order so that the OS data keeps its file order. */
  for (guint64 i = 0; i < blocks; i++)
    {
      if (zero_group[i * MIB / GROUP])
        continue;
      if (random[i])
        fill_random (buf, MIB, &s);
      else
        os_read (os, buf, MIB);
      if (pwrite (fd, buf, MIB, i * MIB) != MIB)
        die ("cannot write the raw disk", NULL);
    }
  close (fd);
}

/* --- tools ---------------------------------------------------------------- */

/* Runs ARGV (NULL-terminated) with ENVP added; seconds it took. */
static double
run_env (const char *const *argv, const char *const *envp)
{
  g_auto (GStrv) env = g_get_environ ();
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (GError) error = NULL;
  double t0 = now_s ();
  int status;

  for (guint i = 0; envp && envp[i]; i++)
    {
      g_auto (GStrv) kv = g_strsplit (envp[i], "=", 2);
      env = g_environ_setenv (env, kv[0], kv[1], TRUE);
    }
  if (!g_spawn_sync (NULL, (char **)argv, env, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     &out, &err, &status, &error)
      || !g_spawn_check_wait_status (status, &error))
    {
      fprintf (stderr, "%s%s", out ? out : "", err ? err : "");
      die (argv[0], error);
    }
  return now_s () - t0;
}

static double
run (const char *const *argv)
{
  return run_env (argv, NULL);
}

/* qemu-nbd exporting IMAGE read-only on SOCK as "vda", with the dirty
 * bitmap BITMAP (may be NULL). */
static GPid
nbd_start (const char *image, const char *sock, const char *bitmap)
{
  const char *argv[]
      = { "qemu-nbd", "--read-only", "--persistent", "-e",  "4",
          "-f",       "qcow2",       "-x",           "vda", "-k",
          sock,       image,         NULL,           NULL,  NULL };
  GPid pid;

  if (bitmap)
    argv[12] = "-B", argv[13] = bitmap;
  g_unlink (sock);
  if (!g_spawn_async (NULL, (char **)argv, NULL,
                      G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                      NULL, &pid, NULL))
    die ("qemu-nbd", NULL);
  for (int i = 0; i < 200 && !g_file_test (sock, G_FILE_TEST_EXISTS); i++)
    g_usleep (25 * 1000);
  return pid;
}

static void
nbd_stop (GPid pid)
{
  kill (pid, SIGTERM);
  (void)waitpid (pid, NULL, 0);
  g_spawn_close_pid (pid);
}

/* --- Drover --------------------------------------------------------------- */

typedef struct
{
  char *id;
  double secs;
  AgentBackupStats st;
} Backup;

/* Backs up IMAGE as VM into REPO (incremental from PARENT through
 * BITMAP when given), timed from the writer's begin to its commit. */
static Backup
drover_backup (Bench *b, StorRepo *repo, const char *vm, const char *image,
               const char *parent, const char *bitmap)
{
  g_autofree char *sock = g_build_filename (b->dir, "nbd.sock", NULL);
  g_autofree char *ctx
      = bitmap ? g_strconcat ("qemu:dirty-bitmap:", bitmap, NULL) : NULL;
  GPid pid = nbd_start (image, sock, bitmap);
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentBackupNbd) n = NULL;
  g_autoptr (StorRepoWriter) w = NULL;
  AgentBackupSink sink = { NULL, 0 };
  Backup r = { NULL, 0, { 0 } };
  gboolean lied = FALSE;
  double t0 = now_s ();

  n = agent_backup_nbd_open (sock, "vda", ctx, &error);
  if (n)
    w = stor_repo_writer_begin (repo, vm, UUID, "<domain/>", parent, &error);
  sink.w = w;
  if (!w
      || !stor_repo_writer_add_disk (w, "vda", agent_backup_nbd_size (n),
                                     &sink.disk, &error)
      || !agent_backup_read_disk (n, parent != NULL, 0, &agent_backup_sink_ops,
                                  &sink, NULL, NULL, &r.st, &lied, NULL, &error)
      || !stor_repo_writer_commit (w, "drover-bk-bench",
                                   STOR_REPO_CONSISTENCY_CRASH, &error))
    die ("backup", error);
  r.secs = now_s () - t0;
  r.id = g_strdup (stor_repo_writer_id (w));
  g_clear_pointer (&n, agent_backup_nbd_free);
  nbd_stop (pid);
  return r;
}

static guint64
repo_bytes (StorRepo *repo)
{
  g_autoptr (GError) error = NULL;
  StorRepoStatus st;

  if (!stor_repo_status (repo, &st, &error))
    die ("repo status", error);
  return st.disk_bytes;
}

static StorRepo *
repo_new (Bench *b, const char *name)
{
  g_autofree char *path = g_build_filename (b->dir, name, NULL);
  g_autoptr (GError) error = NULL;
  StorRepo *repo;

  if (!stor_repo_init (path, &error) || !(repo = stor_repo_open (path, &error)))
    die ("repository", error);
  return repo;
}

/* --- the floor: SHA-256 and lz4 alone ------------------------------------ */

typedef struct
{
  GPtrArray *chunks; /* GBytes: the disk's data chunks, in memory */
  gint next;
} Floor;

/* One output buffer per thread, reused: a fresh 4 MiB allocation per
 * chunk would measure page faults, not SHA-256 and lz4. */
static void
floor_one (GBytes *chunk, char *out, int bound)
{
  gsize len;
  const char *data = g_bytes_get_data (chunk, &len);
  StorRepoDigest d;

  stor_repo_digest (data, len, &d);
  (void)LZ4_compress_default (data, out, (int)len, bound);
}

static gpointer
floor_thread (gpointer data)
{
  Floor *f = data;
  int bound = LZ4_compressBound (STOR_REPO_CHUNK_SIZE);
  g_autofree char *out = g_malloc0 (bound);
  gint i;

  while ((i = g_atomic_int_add (&f->next, 1)) < (gint)f->chunks->len)
    floor_one (g_ptr_array_index (f->chunks, i), out, bound);
  return NULL;
}

/* Seconds to hash and compress the data chunks in F on THREADS
 * threads. */
static double
floor_run (Floor *f, guint threads)
{
  g_autoptr (GPtrArray) ts = g_ptr_array_new ();
  double t0 = now_s ();

  f->next = 0;
  for (guint i = 0; i < threads; i++)
    g_ptr_array_add (ts, g_thread_new ("floor", floor_thread, f));
  for (guint i = 0; i < threads; i++)
    g_thread_join (g_ptr_array_index (ts, i));
  return now_s () - t0;
}

/* The data chunks of RAW (all-zero ones left out) in memory; *BYTES:
 * their size. */
static GPtrArray *
floor_load (const char *raw, guint64 size, guint64 *bytes)
{
  GPtrArray *chunks
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  int fd = open (raw, O_RDONLY);

  *bytes = 0;
  for (guint64 off = 0; off < size; off += STOR_REPO_CHUNK_SIZE)
    {
      gsize len = MIN (STOR_REPO_CHUNK_SIZE, size - off);
      guint8 *buf = g_malloc (len);

      if (pread (fd, buf, len, off) != (ssize_t)len)
        die ("cannot read the raw disk", NULL);
      if (stor_repo_is_zero (buf, len))
        {
          g_free (buf);
          continue;
        }
      g_ptr_array_add (chunks, g_bytes_new_take (buf, len));
      *bytes += len;
    }
  close (fd);
  return chunks;
}

/* --- the incrementals' changes ------------------------------------------- */

/* Writes runs of new data totalling FRACTION of IMAGE's SIZE through
 * qemu-io (so an enabled dirty bitmap records them). *CHANGED: distinct
 * bytes written; *CHUNKED: bytes of the 4 MiB chunks they touch. */
static void
change_disk (Bench *b, const char *image, double fraction, guint64 seed,
             OsData *os, guint64 *changed, guint64 *chunked)
{
  guint64 units = b->size / (64 * 1024), s = seed, goal = fraction * b->size;
  g_autofree guint8 *unit = g_new0 (guint8, units);
  g_autofree guint8 *chunk = g_new0 (guint8, b->size / STOR_REPO_CHUNK_SIZE);
  g_autofree char *src = g_build_filename (b->dir, "change.bin", NULL);

  *changed = *chunked = 0;
  while (*changed < goal)
    {
      guint64 len = MIN ((4 + rng (&s) % 29) * MIB, goal - *changed);
      guint64 off = rng (&s) % (units - len / (64 * 1024)) * 64 * 1024;
      g_autofree guint8 *buf = g_malloc (len + 64 * 1024);
      g_autofree char *cmd = NULL;
      const char *argv[]
          = { "qemu-io", "-f", "qcow2", "-c", NULL, image, NULL };

      len = (len + 64 * 1024 - 1) / (64 * 1024) * (64 * 1024);
      fill_mix (buf, len, os, &s);
      if (!g_file_set_contents (src, (char *)buf, len, NULL))
        die ("cannot write the change", NULL);
      cmd = g_strdup_printf ("write -s %s %" G_GUINT64_FORMAT
                             " %" G_GUINT64_FORMAT,
                             src, off, len);
      argv[4] = cmd;
      run (argv);
      for (guint64 u = off / (64 * 1024); u < (off + len) / (64 * 1024); u++)
        {
          *changed += unit[u] ? 0 : 64 * 1024;
          unit[u] = 1;
          chunk[u * 64 * 1024 / STOR_REPO_CHUNK_SIZE] = 1;
        }
    }
  for (guint64 i = 0; i < b->size / STOR_REPO_CHUNK_SIZE; i++)
    *chunked += chunk[i] ? STOR_REPO_CHUNK_SIZE : 0;
  g_unlink (src);
}

/* --- the table ------------------------------------------------------------ */

static double
mibs (guint64 bytes, double secs)
{
  return bytes / (double)MIB / secs;
}

/* One row: WHAT, Drover's figure, the baseline's, the ratio and whether
 * it meets TARGET (AT_LEAST: ratio >= target, else ratio <= target). */
static void
row (const char *what, const char *drover, const char *base, double ratio,
     double target, gboolean at_least)
{
  gboolean met = at_least ? ratio >= target : ratio <= target;

  printf ("| %s | %s | %s | %.2fx | %s %.2fx | %s |\n", what, drover, base,
          ratio, at_least ? ">=" : "<=", target, met ? "MET" : "MISSED");
}

static void
info (const char *what, const char *drover, const char *base)
{
  printf ("| %s | %s | %s | - | - | - |\n", what, drover, base);
}

static void
load (const char *when)
{
  g_autofree char *text = NULL;

  if (g_file_get_contents ("/proc/loadavg", &text, NULL, NULL))
    printf ("load average %s: %s", when, text);
}

/* --- the steps ------------------------------------------------------------ */

typedef struct
{
  char *raw, *disk, *copy;
  double full_s; /* Drover's first full backup */
} Disk;

static char *
path (Bench *b, const char *name)
{
  return g_build_filename (b->dir, name, NULL);
}

/* Full backups against qemu-img convert, borg and restic; then a second
 * full of the unchanged disk. Returns the second's id (the parent of
 * the incrementals). */
static char *
step_full (Bench *b, Disk *d, StorRepo *repo)
{
  g_autofree char *borg_repo = path (b, "borg"),
                  *restic_repo = path (b, "restic");
  g_autofree char *borg_base = g_strconcat ("BORG_BASE_DIR=", b->dir, NULL);
  g_autofree char *restic_cache
      = g_strconcat ("RESTIC_CACHE_DIR=", b->dir, "/restic-cache", NULL);
  const char *conv[]
      = { "qemu-img", "convert", "-O", "qcow2", d->disk, d->copy, NULL };
  const char *sync_copy[] = { "sync", d->copy, NULL };
  const char *binit[] = { "borg", "init", "-e", "none", borg_repo, NULL };
  g_autofree char *archive = g_strconcat (borg_repo, "::full", NULL);
  const char *bcreate[] = { "borg",          "create",
                            "--compression", "lz4",
                            "--sparse",      "--chunker-params",
                            "fixed,4194304", archive,
                            d->raw,          NULL };
  const char *benv[]
      = { borg_base, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes", NULL };
  const char *rinit[]
      = { "restic",    "init", "--repository-version", "2", "--repo",
          restic_repo, NULL };
  const char *rbackup[]
      = { "restic", "backup", "--repo", restic_repo, d->raw, NULL };
  const char *renv[] = { "RESTIC_PASSWORD=drover-bench", restic_cache, NULL };
  Backup full = drover_backup (b, repo, "vm1", d->disk, NULL, NULL);
  Backup again;
  double conv_s, sync_s, borg_s, restic_s;
  char dv[64], bv[64];

  d->full_s = full.secs;
  conv_s = run (conv);
  sync_s = run (sync_copy);
  run_env (binit, benv);
  borg_s = run_env (bcreate, benv);
  run_env (rinit, renv);
  restic_s = run_env (rbackup, renv);
  again = drover_backup (b, repo, "vm1", d->disk, NULL, NULL);

  g_snprintf (dv, sizeof dv, "%.0f MiB/s (%.1f s)", mibs (b->size, full.secs),
              full.secs);
  g_snprintf (bv, sizeof bv, "%.0f MiB/s (%.1f s)", mibs (b->size, conv_s),
              conv_s);
  row ("full backup vs `qemu-img convert -O qcow2`", dv, bv, conv_s / full.secs,
       0.7, TRUE);
  g_snprintf (bv, sizeof bv, "%.0f MiB/s (%.1f s)",
              mibs (b->size, conv_s + sync_s), conv_s + sync_s);
  info ("(convert, then `sync` of the copy)", dv, bv);
  g_snprintf (bv, sizeof bv, "%.0f MiB/s (%.1f s)", mibs (b->size, borg_s),
              borg_s);
  row ("full backup vs `borg create` (lz4, fixed 4 MiB, --sparse)", dv, bv,
       borg_s / full.secs, 3, TRUE);
  g_snprintf (bv, sizeof bv, "%.0f MiB/s (%.1f s)", mibs (b->size, restic_s),
              restic_s);
  row ("full backup vs `restic backup` (repo v2)", dv, bv, restic_s / full.secs,
       3, TRUE);
  g_snprintf (dv, sizeof dv, "%.2f %% new (%" G_GUINT64_FORMAT " of %.0f MiB)",
              100.0 * again.st.bytes_new / MAX (1, again.st.bytes_read),
              again.st.bytes_new, again.st.bytes_read / (double)MIB);
  row ("second full, unchanged disk: new bytes", dv, "-",
       (double)again.st.bytes_new / MAX (1, again.st.bytes_read), 0.01, FALSE);
  g_snprintf (dv, sizeof dv, "%.1f s, %.0f MiB read", again.secs,
              again.st.bytes_read / (double)MIB);
  info ("second full, time", dv, "-");
  g_free (full.id);
  return again.id;
}

/* An incremental after changing FRACTION of the disk, from PARENT. */
static char *
step_incremental (Bench *b, Disk *d, StorRepo *repo, const char *parent,
                  double fraction, const char *bitmap, OsData *os)
{
  const char *add[] = { "qemu-img", "bitmap", "--add", d->disk, bitmap, NULL };
  guint64 changed, chunked;
  Backup inc;
  char what[96], dv[96], bv[96];

  run (add);
  change_disk (b, d->disk, fraction, b->seed + (guint64)(fraction * 1000), os,
               &changed, &chunked);
  inc = drover_backup (b, repo, "vm1", d->disk, parent, bitmap);
  g_snprintf (bv, sizeof bv, "%.1f MiB changed (%.1f MiB of chunks touched)",
              changed / (double)MIB, chunked / (double)MIB);
  g_snprintf (what, sizeof what, "incremental, %.0f %% changed: bytes read",
              fraction * 100);
  g_snprintf (dv, sizeof dv, "%.1f MiB", inc.st.bytes_read / (double)MIB);
  row (what, dv, bv, (double)inc.st.bytes_read / changed, 1.1, FALSE);
  g_snprintf (what, sizeof what, "incremental, %.0f %% changed: bytes added",
              fraction * 100);
  g_snprintf (dv, sizeof dv, "%.1f MiB", inc.st.bytes_new / (double)MIB);
  row (what, dv, bv, (double)inc.st.bytes_new / changed, 1.1, FALSE);
  g_snprintf (what, sizeof what, "incremental, %.0f %% changed: time",
              fraction * 100);
  g_snprintf (dv, sizeof dv, "%.2f s (%.1f %% of the full's)", inc.secs,
              100 * inc.secs / d->full_s);
  g_snprintf (bv, sizeof bv, "full %.1f s", d->full_s);
  row (what, dv, bv, inc.secs / d->full_s / fraction, 1.1, FALSE);
  return inc.id;
}

/* Restore of backup ID against qemu-img convert back; then verify. */
static void
step_restore_verify (Bench *b, Disk *d, StorRepo *repo, const char *id)
{
  g_autofree char *out = path (b, "restored.qcow2");
  g_autofree char *back = path (b, "back.qcow2");
  g_autofree char *sock = path (b, "restore.sock");
  const char *conv[]
      = { "qemu-img", "convert", "-O", "qcow2", d->copy, back, NULL };
  const char *compare[] = { "qemu-img", "compare", "-q", d->disk, out, NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (StorRepoVerifyResult) v = NULL;
  AgentBackupStats st;
  double t0 = now_s (), restore_s, conv_s, verify_s;
  char dv[64], bv[64];

  if (!agent_backup_restore_image (repo, id, out, sock, NULL, NULL, NULL, &st,
                                   &error))
    die ("restore", error);
  restore_s = now_s () - t0;
  run (compare); /* fails the bench on a wrong restore */
  conv_s = run (conv);
  g_snprintf (dv, sizeof dv, "%.0f MiB/s (%.1f s)", mibs (b->size, restore_s),
              restore_s);
  g_snprintf (bv, sizeof bv, "%.0f MiB/s (%.1f s)", mibs (b->size, conv_s),
              conv_s);
  row ("restore vs `qemu-img convert` back", dv, bv, conv_s / restore_s, 0.8,
       TRUE);

  t0 = now_s ();
  v = stor_repo_verify (repo, NULL, NULL, NULL, NULL, &error);
  verify_s = now_s () - t0;
  if (!v || v->bad->len)
    die ("verify", error);
  g_snprintf (dv, sizeof dv,
              "%.0f MiB/s (%" G_GUINT64_FORMAT " chunks, %.0f MiB, %.1f s)",
              mibs (v->bytes, verify_s), v->chunks, v->bytes / (double)MIB,
              verify_s);
  info ("verify, every backup", dv, "-");
}

/* Ten linked clones of the disk, each backed up as its own VM into a new
 * repository: its growth against one. */
static void
step_clones (Bench *b, Disk *d)
{
  g_autoptr (StorRepo) repo = repo_new (b, "repo-clones");
  guint64 empty = repo_bytes (repo), one = 0;
  double secs = 0;
  char dv[96];

  for (guint i = 1; i <= 10; i++)
    {
      g_autofree char *vm = g_strdup_printf ("clone%u", i);
      g_autofree char *name = g_strdup_printf ("%s.qcow2", vm);
      g_autofree char *clone = path (b, name);
      const char *create[]
          = { "qemu-img", "create", "-q",    "-f",  "qcow2", "-F",
              "qcow2",    "-b",     d->disk, clone, NULL };
      Backup bk;

      run (create);
      bk = drover_backup (b, repo, vm, clone, NULL, NULL);
      secs += bk.secs;
      g_free (bk.id);
      if (i == 1)
        one = repo_bytes (repo) - empty;
    }
  g_snprintf (dv, sizeof dv, "%.0f MiB after 1, %.0f MiB after 10 (%.1f s)",
              one / (double)MIB, (repo_bytes (repo) - empty) / (double)MIB,
              secs);
  row ("ten clones of one template: repository growth", dv, "one VM",
       (double)(repo_bytes (repo) - empty) / one, 1.2, FALSE);
}

static void
step_floor (Bench *b, Disk *d, double full_s)
{
  guint64 bytes;
  Floor f = { floor_load (d->raw, b->size, &bytes), 0 };
  guint cpus = g_get_num_processors ();
  double one = floor_run (&f, 1), all = floor_run (&f, cpus);
  char dv[96];

  g_snprintf (dv, sizeof dv, "%.0f MiB/s of data (%.0f MiB, %.2f s)",
              mibs (bytes, one), bytes / (double)MIB, one);
  info ("floor: SHA-256 + lz4, 1 thread", dv, "-");
  g_snprintf (dv, sizeof dv, "%.0f MiB/s of data (%.2f s); disk at %.0f MiB/s",
              mibs (bytes, all), all, mibs (b->size, all));
  info ("floor: SHA-256 + lz4, all threads", dv, "-");
  g_snprintf (dv, sizeof dv, "%.0f %%", 100 * all / full_s);
  info ("floor's share of the full backup's time", dv, "-");
  g_ptr_array_unref (f.chunks);
}

int
main (int argc, char **argv)
{
  Bench b = { NULL, 2048, 1 };
  gboolean keep = FALSE;
  g_autofree char *dir = NULL;
  GOptionEntry entries[]
      = { { "dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
            "work directory (default: a new one under /var/tmp)", "DIR" },
          { "size-mib", 0, 0, G_OPTION_ARG_INT64, &b.size,
            "disk size in MiB (a multiple of 8; default 2048)", "N" },
          { "seed", 0, 0, G_OPTION_ARG_INT64, &b.seed, "pattern seed", "S" },
          { "keep", 0, 0, G_OPTION_ARG_NONE, &keep, "keep the work directory",
            NULL },
          { NULL } };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- backup benchmark");
  g_autoptr (GError) error = NULL;
  g_autoptr (StorRepo) repo = NULL;
  OsData os = { g_ptr_array_new_with_free_func (g_free), 0, -1 };
  Disk d;
  g_autofree char *parent = NULL, *inc1 = NULL, *inc10 = NULL;
  const char *tools[] = { "qemu-img", "qemu-nbd", "qemu-io", "borg", "restic" };

  /* A row as soon as it is measured, even into a pipe. */
  setvbuf (stdout, NULL, _IOLBF, 0);
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    die ("options", error);
  if (b.size < 64 || b.size % 8)
    die ("--size-mib must be a multiple of 8, at least 64", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (tools); i++)
    if (!g_find_program_in_path (tools[i]))
      die (tools[i], NULL); /* scripts/deps installs them */
  b.size *= MIB;
  b.seed = b.seed ? b.seed : 1;
  b.dir = dir ? g_strdup (dir)
              : g_dir_make_tmp ("drover-bench-backup-XXXXXX", &error);
  if (!b.dir || g_mkdir_with_parents (b.dir, 0755) != 0)
    die ("work directory", error);
  d.raw = path (&b, "disk.raw");
  d.disk = path (&b, "disk.qcow2");
  d.copy = path (&b, "copy.qcow2");

  printf ("backup benchmark: %" G_GUINT64_FORMAT
          " MiB disk, seed %" G_GUINT64_FORMAT ", %u CPUs, work directory %s\n",
          b.size / MIB, b.seed, g_get_num_processors (), b.dir);
  load ("at start");
  os_collect ("/usr/lib", os.files);
  if (os.files->len == 0)
    die ("no files under /usr/lib", NULL);
  make_disk (&b, d.raw, &os);
  {
    const char *conv[] = { "qemu-img", "convert", "-f",   "raw", "-O",
                           "qcow2",    d.raw,     d.disk, NULL };
    run (conv);
  }
  printf (
      "disk: half OS-like (/usr/lib), a quarter random, a quarter zero\n\n");
  printf ("| figure | Drover | baseline | ratio | target | |\n");
  printf ("|---|---|---|---|---|---|\n");
  repo = repo_new (&b, "repo");
  parent = step_full (&b, &d, repo);
  step_floor (&b, &d, d.full_s);
  inc1 = step_incremental (&b, &d, repo, parent, 0.01, "bk1", &os);
  inc10 = step_incremental (&b, &d, repo, inc1, 0.10, "bk10", &os);
  step_restore_verify (&b, &d, repo, inc10);
  step_clones (&b, &d);
  printf ("\n");
  load ("at end");
  if (!keep)
    {
      const char *rm[] = { "rm", "-rf", b.dir, NULL };
      run (rm);
    }
  return 0;
}
