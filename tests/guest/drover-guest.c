/* drover-guest: workload and heartbeat of the Drover test guest.
 *
 * Runs inside the test initramfs (started by /init) and is configured
 * from the kernel command line (/proc/cmdline):
 *
 *   drover.hb_ms=N     heartbeat period in ms (default 1000, minimum 1)
 *   drover.ws_mib=W    working set to keep dirtying, MiB (default 0 = none)
 *   drover.rate_mib=R  MiB/s dirtied (default 0 = as fast as the dirtying
 *                      thread can go; that thread runs at nice 19 so the
 *                      heartbeat still runs on time on a single vCPU)
 *   drover.data=D      what is written into dirtied pages:
 *                      zero   - zeros
 *                      text   - log-like lines (lz4 ratio ~2-3)
 *                      random - incompressible (xorshift64*)
 *   drover.disk=check  treat /dev/vda as a checkable data disk (below)
 *   drover.disk_blocks=N      at most N data blocks (default 256 = 16 MiB)
 *   drover.disk_pause_ms=P    pause after each generation (default 1000)
 *   drover.echo=PORT   TCP echo service on 0.0.0.0:PORT (default off): each
 *                      connection gets its bytes back until it closes; one
 *                      poll loop serves up to ECHO_MAX_CONN at once
 *   drover.probe=IP:PORT[,IP:PORT...]  (at most PROBE_MAX) once a second,
 *                      connect to each (2 s timeout), send a line, expect it
 *                      echoed back; prints the result of every attempt
 *   (drover.ip=ADDR/LEN configures eth0 in /init before this starts)
 *
 * Output on the serial console (/dev/ttyS0, fallback /dev/console), one
 * write() per line, "\n" line ends (output post-processing is switched
 * off so no "\r" is added):
 *
 *   DROVER-GUEST up ws=<W> rate=<R> data=<D> hb=<N>
 *   HB <counter> <monotonic_ms>        counter 1, 2, ...; CLOCK_MONOTONIC
 *   DROVER-GUEST ws-ready              after the first full pass over W
 *   DROVER-GUEST error <text>          e.g. the working set did not fit
 *   DROVER-GUEST disk found blocks=<N> ok=<K> bad=<M> blank=<B> gen_min=<G1>
 *     gen_max=<G2>                     (one line) what the boot-time check of
 *                                      vda found, before anything is written
 *   DROVER-GUEST disk gen <G> written  every data block now holds gen G
 *   DROVER-GUEST echo listening port=<P>
 *   DROVER-GUEST probe <IP>:<PORT> ok n=<K> | fail n=<K> <reason>
 *
 * The checkable disk (drover.disk=check): 64 KiB blocks; block 0 is a
 * header, blocks 1..N hold data, N = disk size / 64 KiB - 1 capped by
 * drover.disk_blocks. A data block is 8192 little-endian u64 words:
 * magic, generation, index, a payload derived from (generation, index)
 * and, last, a checksum of the words before it, so every block verifies on
 * its own. A block of zeros is blank; anything else that does not verify
 * is bad; gen_min/gen_max are over the good blocks (0 when there are
 * none). After the check the guest writes generation gen_max + 1 into
 * blocks 1..N in order (O_DIRECT, then fdatasync so QEMU has it), prints
 * "disk gen G written", sleeps drover.disk_pause_ms, and goes on with
 * G + 1 forever. A snapshot taken in the pause therefore shows ok=N
 * gen_min=gen_max=G at the next boot; one taken mid-pass shows gen_min=G,
 * gen_max=G+1 and still bad=0. The writer runs at nice 19, like the
 * memory dirtier, so it does not delay heartbeats.
 *
 * A working set larger than MemAvailable - 12 MiB is reduced to that (an
 * error line says so, and the "up" line shows the value used): the Debian
 * kernel leaves only ~70 MiB usable in a 128 MiB guest, so use -m 192 for
 * W=64 or -m 384 for W=256.
 *
 * Heartbeats are on an absolute schedule (start + k * period); when the
 * process was stopped for longer than a period (e.g. a migration pause)
 * the missed slots are skipped, not emitted in a burst, so the gap in
 * monotonic_ms between consecutive lines shows the stall.
 *
 * Host-side helper: `drover-guest --dump DATA MIB` writes MIB MiB of the
 * given content to stdout, to measure e.g. the lz4 ratio of "text".
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SZ 4096
#define MIB (1024UL * 1024UL)

enum data_kind
{
  DATA_ZERO,
  DATA_TEXT,
  DATA_RANDOM
};

static const char *const data_names[] = { "zero", "text", "random" };

struct config
{
  unsigned long hb_ms;
  unsigned long ws_mib;
  unsigned long rate_mib;
  enum data_kind data;
  int disk_check;
  unsigned long disk_blocks;
  unsigned long disk_pause_ms;
  unsigned long echo_port; /* 0 = off */
  char probe[256];         /* drover.probe value, "" = off */
};

static int out_fd = -1;

/* One write() per line so a line is never split by our own writes. */
static void
out_line (const char *fmt, ...)
{
  char buf[256];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (buf, sizeof buf - 1, fmt, ap);
  va_end (ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof buf - 2)
    n = sizeof buf - 2;
  buf[n++] = '\n';
  const char *p = buf;
  while (n > 0)
    {
      ssize_t w = write (out_fd, p, (size_t)n);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          return;
        }
      p += w;
      n -= (int)w;
    }
}

static uint64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
ts_add_ns (struct timespec *ts, uint64_t ns)
{
  ns += (uint64_t)ts->tv_nsec;
  ts->tv_sec += (time_t)(ns / 1000000000u);
  ts->tv_nsec = (long)(ns % 1000000000u);
}

static int
ts_before (const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec < b->tv_sec
         || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void
sleep_until (const struct timespec *t)
{
  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR)
    ;
}

/* ---- configuration ---------------------------------------------------- */

static unsigned long
parse_ul (const char *s, unsigned long def)
{
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul (s, &end, 10);
  if (errno != 0 || end == s)
    return def;
  return v;
}

static void
config_parse (struct config *cfg, const char *cmdline)
{
  cfg->hb_ms = 1000;
  cfg->ws_mib = 0;
  cfg->rate_mib = 0;
  cfg->data = DATA_ZERO;
  cfg->disk_check = 0;
  cfg->disk_blocks = 256;
  cfg->disk_pause_ms = 1000;
  cfg->echo_port = 0;
  cfg->probe[0] = '\0';

  char *copy = strdup (cmdline);
  if (copy == NULL)
    return;
  char *save = NULL;
  for (char *tok = strtok_r (copy, " \t\n", &save); tok != NULL;
       tok = strtok_r (NULL, " \t\n", &save))
    {
      if (strncmp (tok, "drover.hb_ms=", 13) == 0)
        cfg->hb_ms = parse_ul (tok + 13, 1000);
      else if (strncmp (tok, "drover.ws_mib=", 14) == 0)
        cfg->ws_mib = parse_ul (tok + 14, 0);
      else if (strncmp (tok, "drover.rate_mib=", 16) == 0)
        cfg->rate_mib = parse_ul (tok + 16, 0);
      else if (strncmp (tok, "drover.data=", 12) == 0)
        {
          const char *d = tok + 12;
          if (strcmp (d, "text") == 0)
            cfg->data = DATA_TEXT;
          else if (strcmp (d, "random") == 0)
            cfg->data = DATA_RANDOM;
          else
            cfg->data = DATA_ZERO;
        }
      else if (strcmp (tok, "drover.disk=check") == 0)
        cfg->disk_check = 1;
      else if (strncmp (tok, "drover.disk_blocks=", 19) == 0)
        cfg->disk_blocks = parse_ul (tok + 19, 256);
      else if (strncmp (tok, "drover.disk_pause_ms=", 21) == 0)
        cfg->disk_pause_ms = parse_ul (tok + 21, 1000);
      else if (strncmp (tok, "drover.echo=", 12) == 0)
        {
          cfg->echo_port = parse_ul (tok + 12, 0);
          if (cfg->echo_port > 65535)
            cfg->echo_port = 0;
        }
      else if (strncmp (tok, "drover.probe=", 13) == 0)
        snprintf (cfg->probe, sizeof cfg->probe, "%s", tok + 13);
    }
  free (copy);
  if (cfg->hb_ms == 0)
    cfg->hb_ms = 1;
}

static char *
read_cmdline (void)
{
  static char buf[4096];
  int fd = open ("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return strcpy (buf, "");
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

/* ---- page content ----------------------------------------------------- */

struct filler
{
  enum data_kind kind;
  uint64_t rng;
  uint64_t line_no;
};

static inline uint64_t
xorshift64s (uint64_t *s)
{
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static const char *const words[] = {
  "request",        "served",  "worker",     "session",       "client",
  "upstream",       "cache",   "miss",       "hit",           "latency",
  "bytes",          "status",  "ok",         "retry",         "timeout",
  "connect",        "closed",  "queue",      "depth",         "flush",
  "commit",         "journal", "index",      "lookup",        "user",
  "admin",          "GET",     "POST",       "/api/v1/items", "/healthz",
  "/static/app.js", "200",     "404",        "503",           "info",
  "debug",          "warn",    "checkpoint", "compaction",    "segment",
  "replica",        "leader",
};
#define N_WORDS (sizeof words / sizeof words[0])

static char *
put_str (char *p, const char *end, const char *s)
{
  while (*s != '\0' && p < end)
    *p++ = *s++;
  return p;
}

static char *
put_num (char *p, const char *end, uint64_t v, int width)
{
  char tmp[24];
  int n = 0;
  do
    {
      tmp[n++] = (char)('0' + v % 10);
      v /= 10;
    }
  while (v != 0 && n < (int)sizeof tmp);
  while (n < width && n < (int)sizeof tmp)
    tmp[n++] = '0';
  while (n > 0 && p < end)
    *p++ = tmp[--n];
  return p;
}

/* Log-like lines: a fixed-format prefix with a counting timestamp, a few
 * words from a small dictionary and a couple of random numbers. lz4 finds
 * the repeated prefix and words, the numbers keep it from collapsing. */
static void
fill_text (struct filler *f, char *page)
{
  char *p = page;
  const char *end = page + PAGE_SZ;
  while (p < end)
    {
      uint64_t r = xorshift64s (&f->rng);
      f->line_no++;
      p = put_str (p, end, "2024-05-");
      p = put_num (p, end, 10 + (f->line_no / 86400000u) % 18, 2);
      p = put_str (p, end, "T");
      p = put_num (p, end, (f->line_no / 3600000u) % 24, 2);
      p = put_str (p, end, ":");
      p = put_num (p, end, (f->line_no / 60000u) % 60, 2);
      p = put_str (p, end, ":");
      p = put_num (p, end, (f->line_no / 1000u) % 60, 2);
      p = put_str (p, end, ".");
      p = put_num (p, end, f->line_no % 1000, 3);
      p = put_str (p, end, " node-7 app[1042]: ");
      int nw = 3 + (int)(r & 3);
      r >>= 2;
      for (int i = 0; i < nw; i++)
        {
          p = put_str (p, end, words[r % N_WORDS]);
          r /= N_WORDS;
          p = put_str (p, end, " ");
        }
      p = put_str (p, end, "id=");
      p = put_num (p, end, xorshift64s (&f->rng) % 100000u, 5);
      p = put_str (p, end, " ms=");
      p = put_num (p, end, r % 1000u, 1);
      p = put_str (p, end, "\n");
    }
}

static void
fill_page (struct filler *f, char *page)
{
  switch (f->kind)
    {
    case DATA_ZERO:
      memset (page, 0, PAGE_SZ);
      break;
    case DATA_RANDOM:
      {
        uint64_t *q = (uint64_t *)(void *)page;
        for (size_t i = 0; i < PAGE_SZ / sizeof *q; i++)
          q[i] = xorshift64s (&f->rng);
        break;
      }
    case DATA_TEXT:
      fill_text (f, page);
      break;
    }
}

static void
filler_init (struct filler *f, enum data_kind kind)
{
  f->kind = kind;
  f->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)now_ms ()
           ^ ((uint64_t)getpid () << 32);
  if (f->rng == 0)
    f->rng = 1;
  f->line_no = 0;
}

/* ---- dirtying thread -------------------------------------------------- */

struct dirtier
{
  struct config cfg;
  char *mem;
  size_t len;
};

/* Pages are written in bursts of this size between rate checks. */
#define BURST_PAGES 64

static void *
dirtier_main (void *arg)
{
  struct dirtier *d = arg;
  struct filler f;
  filler_init (&f, d->cfg.data);

  /* Lowest priority: on one vCPU the heartbeat thread must win. */
  setpriority (PRIO_PROCESS, (id_t)syscall (SYS_gettid), 19);

  size_t npages = d->len / PAGE_SZ;
  size_t idx = 0;
  int announced = 0;
  uint64_t ns_per_burst = 0;
  if (d->cfg.rate_mib > 0)
    ns_per_burst = (uint64_t)BURST_PAGES * PAGE_SZ * 1000000000ULL
                   / (d->cfg.rate_mib * MIB);
  struct timespec next;
  clock_gettime (CLOCK_MONOTONIC, &next);

  for (;;)
    {
      for (int i = 0; i < BURST_PAGES; i++)
        {
          fill_page (&f, d->mem + idx * PAGE_SZ);
          if (++idx == npages)
            {
              idx = 0;
              if (!announced)
                {
                  announced = 1;
                  out_line ("DROVER-GUEST ws-ready");
                }
            }
        }
      if (ns_per_burst > 0)
        {
          ts_add_ns (&next, ns_per_burst);
          struct timespec now;
          clock_gettime (CLOCK_MONOTONIC, &now);
          /* After a long stall do not try to catch up in a rush. */
          if (ts_before (&next, &now))
            {
              struct timespec late = next;
              ts_add_ns (&late, 200000000ULL);
              if (ts_before (&late, &now))
                next = now;
            }
          else
            {
              sleep_until (&next);
            }
        }
    }
  return NULL;
}

static int
start_dirtier (const struct config *cfg)
{
  static struct dirtier d;
  d.cfg = *cfg;
  d.len = cfg->ws_mib * MIB;
  d.mem = mmap (NULL, d.len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (d.mem == MAP_FAILED)
    {
      out_line ("DROVER-GUEST error mmap %lu MiB: %s", cfg->ws_mib,
                strerror (errno));
      return -1;
    }
  pthread_t th;
  int rc = pthread_create (&th, NULL, dirtier_main, &d);
  if (rc != 0)
    {
      out_line ("DROVER-GUEST error pthread_create: %s", strerror (rc));
      return -1;
    }
  pthread_detach (th);
  return 0;
}

/* ---- checkable data disk ---------------------------------------------- */

#define DISK_DEV "/dev/vda"
#define DISK_BLOCK (64u * 1024u)
#define DISK_WORDS (DISK_BLOCK / 8u)
#define DISK_DATA_MAGIC 0x4b4c42444b534944ULL /* "DISKDBLK" */
#define DISK_HEAD_MAGIC 0x44484b534944524dULL /* "MRDISKHD" */

/* Order-dependent hash of words: a swapped, changed or missing word gives
 * another value (multiply-xorshift, cheap enough for TCG). */
static uint64_t
disk_checksum (const uint64_t *w, size_t n)
{
  uint64_t h = 0x6a09e667f3bcc909ULL ^ (uint64_t)n;
  for (size_t i = 0; i < n; i++)
    {
      h ^= w[i] + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
      h *= 0xff51afd7ed558ccdULL;
      h ^= h >> 33;
    }
  return h;
}

static uint64_t
disk_seed (uint64_t gen, uint64_t index)
{
  uint64_t z = gen * 0x9E3779B97F4A7C15ULL + index * 0xC2B2AE3D27D4EB4FULL
               + 0x165667B19E3779F9ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z != 0 ? z : 1;
}

static void
disk_fill_block (uint64_t *w, uint64_t gen, uint64_t index)
{
  uint64_t rng = disk_seed (gen, index);
  w[0] = DISK_DATA_MAGIC;
  w[1] = gen;
  w[2] = index;
  for (size_t i = 3; i < DISK_WORDS - 1; i++)
    w[i] = xorshift64s (&rng);
  w[DISK_WORDS - 1] = disk_checksum (w, DISK_WORDS - 1);
}

enum disk_verdict
{
  DISK_BLANK,
  DISK_OK,
  DISK_BAD
};

/* A block verifies when its checksum, magic and index hold and its payload
 * is the one its generation and index give. */
static enum disk_verdict
disk_verify_block (const uint64_t *w, uint64_t index, uint64_t *gen)
{
  int zero = 1;
  for (size_t i = 0; i < DISK_WORDS && zero; i++)
    zero = w[i] == 0;
  if (zero)
    return DISK_BLANK;
  if (w[0] != DISK_DATA_MAGIC || w[2] != index
      || w[DISK_WORDS - 1] != disk_checksum (w, DISK_WORDS - 1))
    return DISK_BAD;
  uint64_t rng = disk_seed (w[1], index);
  for (size_t i = 3; i < DISK_WORDS - 1; i++)
    if (w[i] != xorshift64s (&rng))
      return DISK_BAD;
  *gen = w[1];
  return DISK_OK;
}

static int
disk_pio (int fd, void *buf, uint64_t block, int write_it)
{
  size_t done = 0;
  while (done < DISK_BLOCK)
    {
      off_t off = (off_t)(block * DISK_BLOCK + done);
      ssize_t n = write_it
                      ? pwrite (fd, (char *)buf + done, DISK_BLOCK - done, off)
                      : pread (fd, (char *)buf + done, DISK_BLOCK - done, off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (n == 0)
            errno = EIO;
          return -1;
        }
      done += (size_t)n;
    }
  return 0;
}

struct disk_writer
{
  unsigned long pause_ms;
  unsigned long max_blocks;
};

static void *
disk_main (void *arg)
{
  const struct disk_writer *d = arg;

  /* Lowest priority: on one vCPU the heartbeat thread must win. */
  setpriority (PRIO_PROCESS, (id_t)syscall (SYS_gettid), 19);

  /* O_DIRECT: reads see the disk, not a cache, and a finished write has
   * reached QEMU; fdatasync after a pass flushes QEMU's own cache. */
  int fd = open (DISK_DEV, O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0)
    {
      out_line ("DROVER-GUEST error disk: open %s: %s", DISK_DEV,
                strerror (errno));
      return NULL;
    }
  uint64_t size = 0;
  if (ioctl (fd, BLKGETSIZE64, &size) != 0)
    {
      out_line ("DROVER-GUEST error disk: size of %s: %s", DISK_DEV,
                strerror (errno));
      close (fd);
      return NULL;
    }
  uint64_t nblocks = size / DISK_BLOCK;
  if (nblocks < 2)
    {
      out_line ("DROVER-GUEST error disk: %s has %llu bytes, needs %u",
                DISK_DEV, (unsigned long long)size, 2 * DISK_BLOCK);
      close (fd);
      return NULL;
    }
  uint64_t n = nblocks - 1;
  if (d->max_blocks > 0 && n > d->max_blocks)
    n = d->max_blocks;

  void *mem = NULL;
  if (posix_memalign (&mem, 4096, DISK_BLOCK) != 0)
    {
      out_line ("DROVER-GUEST error disk: no memory");
      close (fd);
      return NULL;
    }
  uint64_t *w = mem;

  unsigned long long ok = 0, bad = 0, blank = 0;
  uint64_t gen_min = 0, gen_max = 0;
  for (uint64_t i = 1; i <= n; i++)
    {
      if (disk_pio (fd, w, i, 0) != 0)
        {
          out_line ("DROVER-GUEST error disk: read block %llu: %s",
                    (unsigned long long)i, strerror (errno));
          bad++;
          continue;
        }
      uint64_t g = 0;
      switch (disk_verify_block (w, i, &g))
        {
        case DISK_BLANK:
          blank++;
          break;
        case DISK_BAD:
          bad++;
          break;
        case DISK_OK:
          if (ok == 0 || g < gen_min)
            gen_min = g;
          if (ok == 0 || g > gen_max)
            gen_max = g;
          ok++;
          break;
        }
    }
  out_line ("DROVER-GUEST disk found blocks=%llu ok=%llu bad=%llu "
            "blank=%llu gen_min=%llu gen_max=%llu",
            (unsigned long long)n, ok, bad, blank, (unsigned long long)gen_min,
            (unsigned long long)gen_max);

  for (uint64_t gen = gen_max + 1;; gen++)
    {
      /* The header says what the disk is; only the data blocks count. */
      memset (w, 0, DISK_BLOCK);
      w[0] = DISK_HEAD_MAGIC;
      w[1] = DISK_BLOCK;
      w[2] = n;
      w[3] = gen;
      w[DISK_WORDS - 1] = disk_checksum (w, DISK_WORDS - 1);
      int failed = disk_pio (fd, w, 0, 1) != 0;
      for (uint64_t i = 1; i <= n && !failed; i++)
        {
          disk_fill_block (w, gen, i);
          if (disk_pio (fd, w, i, 1) != 0)
            failed = 1;
        }
      if (!failed && fdatasync (fd) != 0)
        failed = 1;
      if (failed)
        {
          out_line ("DROVER-GUEST error disk: write gen %llu: %s",
                    (unsigned long long)gen, strerror (errno));
          break;
        }
      out_line ("DROVER-GUEST disk gen %llu written", (unsigned long long)gen);
      struct timespec t;
      clock_gettime (CLOCK_MONOTONIC, &t);
      ts_add_ns (&t, (uint64_t)d->pause_ms * 1000000ULL);
      sleep_until (&t);
    }
  free (mem);
  close (fd);
  return NULL;
}

static int
start_disk_writer (const struct config *cfg)
{
  static struct disk_writer d;
  d.pause_ms = cfg->disk_pause_ms;
  d.max_blocks = cfg->disk_blocks;
  pthread_t th;
  int rc = pthread_create (&th, NULL, disk_main, &d);
  if (rc != 0)
    {
      out_line ("DROVER-GUEST error pthread_create: %s", strerror (rc));
      return -1;
    }
  pthread_detach (th);
  return 0;
}

/* ---- network: echo service and probes ------------------------------- */

#define ECHO_MAX_CONN 64
#define PROBE_MAX 4

static void *
echo_main (void *arg)
{
  unsigned long port = *(const unsigned long *)arg;
  int ls = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (ls < 0)
    {
      out_line ("DROVER-GUEST error echo socket: %s", strerror (errno));
      return NULL;
    }
  int one = 1;
  setsockopt (ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = { .sin_family = AF_INET,
                            .sin_port = htons ((uint16_t)port),
                            .sin_addr.s_addr = htonl (INADDR_ANY) };
  if (bind (ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen (ls, 16) != 0)
    {
      out_line ("DROVER-GUEST error echo bind port %lu: %s", port,
                strerror (errno));
      close (ls);
      return NULL;
    }
  out_line ("DROVER-GUEST echo listening port=%lu", port);
  /* pfd[0] is the listener, the rest connections (-1 = free slot). */
  struct pollfd pfd[1 + ECHO_MAX_CONN];
  pfd[0].fd = ls;
  pfd[0].events = POLLIN;
  for (int i = 1; i <= ECHO_MAX_CONN; i++)
    pfd[i].fd = -1;
  /* Per connection: bytes read and not yet written back. While a
   * connection has some, it is polled for POLLOUT only, so a client that
   * does not read its echo stalls only itself (sockets are non-blocking). */
  static struct
  {
    char buf[16384];
    size_t off, len;
  } cs[1 + ECHO_MAX_CONN];
  for (;;)
    {
      if (poll (pfd, 1 + ECHO_MAX_CONN, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          out_line ("DROVER-GUEST error echo poll: %s", strerror (errno));
          return NULL;
        }
      if (pfd[0].revents & POLLIN)
        {
          int c = accept4 (ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (c >= 0)
            {
              int slot = 0;
              for (int i = 1; i <= ECHO_MAX_CONN && slot == 0; i++)
                if (pfd[i].fd < 0)
                  slot = i;
              if (slot == 0)
                close (c); /* full: refuse rather than queue */
              else
                {
                  pfd[slot].fd = c;
                  pfd[slot].events = POLLIN;
                  pfd[slot].revents = 0;
                  cs[slot].off = cs[slot].len = 0;
                }
            }
        }
      for (int i = 1; i <= ECHO_MAX_CONN; i++)
        {
          if (pfd[i].fd < 0 || pfd[i].revents == 0)
            continue;
          int ok = 1;
          if (cs[i].len == 0)
            {
              ssize_t n = read (pfd[i].fd, cs[i].buf, sizeof cs[i].buf);
              if (n > 0)
                {
                  cs[i].off = 0;
                  cs[i].len = (size_t)n;
                }
              else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                ok = 0;
            }
          if (ok && cs[i].len > 0)
            {
              /* MSG_NOSIGNAL: a peer gone meanwhile must not raise
               * SIGPIPE, which would end the heartbeat too. */
              ssize_t w = send (pfd[i].fd, cs[i].buf + cs[i].off,
                                cs[i].len - cs[i].off, MSG_NOSIGNAL);
              if (w > 0)
                cs[i].off += (size_t)w;
              else if (w < 0 && errno != EINTR && errno != EAGAIN)
                ok = 0;
              if (cs[i].off == cs[i].len)
                cs[i].off = cs[i].len = 0;
            }
          if (!ok)
            {
              close (pfd[i].fd);
              pfd[i].fd = -1;
              continue;
            }
          pfd[i].events = cs[i].len > 0 ? POLLOUT : POLLIN;
        }
    }
}

struct probe_target
{
  char text[64];
  struct sockaddr_in sa;
};

/* One attempt: 0 on an answered echo, else -1 with *why set. */
static int
probe_once (const struct probe_target *t, unsigned long n, const char **why)
{
  int s = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    {
      *why = strerror (errno);
      return -1;
    }
  struct timeval tv = { .tv_sec = 2, .tv_usec = 0 };
  setsockopt (s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt (s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char msg[64], got[64];
  int len = snprintf (msg, sizeof msg, "drover-probe %lu\n", n);
  int rc = -1;
  if (connect (s, (const struct sockaddr *)&t->sa, sizeof t->sa) != 0)
    *why = errno == EINPROGRESS ? "connect timed out" : strerror (errno);
  else if (send (s, msg, (size_t)len, MSG_NOSIGNAL) != len)
    *why = "short write";
  else
    {
      int have = 0;
      while (have < len)
        {
          ssize_t r = read (s, got + have, (size_t)(len - have));
          if (r <= 0)
            break;
          have += (int)r;
        }
      if (have == len && memcmp (got, msg, (size_t)len) == 0)
        rc = 0;
      else
        *why = have < len ? "no echo" : "wrong echo";
    }
  close (s);
  return rc;
}

static void *
probe_main (void *arg)
{
  const char *spec = arg;
  struct probe_target t[PROBE_MAX];
  int nt = 0;
  char copy[256];
  snprintf (copy, sizeof copy, "%s", spec);
  char *save = NULL;
  for (char *tok = strtok_r (copy, ",", &save); tok != NULL;
       tok = strtok_r (NULL, ",", &save))
    {
      char *colon = strrchr (tok, ':');
      unsigned long port = colon ? parse_ul (colon + 1, 0) : 0;
      if (colon)
        *colon = '\0';
      if (nt == PROBE_MAX || port == 0 || port > 65535 || strlen (tok) > 15)
        {
          out_line ("DROVER-GUEST error probe target ignored");
          continue;
        }
      memset (&t[nt].sa, 0, sizeof t[nt].sa);
      t[nt].sa.sin_family = AF_INET;
      t[nt].sa.sin_port = htons ((uint16_t)port);
      if (inet_pton (AF_INET, tok, &t[nt].sa.sin_addr) != 1)
        {
          out_line ("DROVER-GUEST error probe target ignored");
          continue;
        }
      snprintf (t[nt].text, sizeof t[nt].text, "%s:%lu", tok, port);
      nt++;
    }
  for (unsigned long n = 1; nt > 0; n++)
    {
      for (int i = 0; i < nt; i++)
        {
          const char *why = "";
          if (probe_once (&t[i], n, &why) == 0)
            out_line ("DROVER-GUEST probe %s ok n=%lu", t[i].text, n);
          else
            out_line ("DROVER-GUEST probe %s fail n=%lu %s", t[i].text, n, why);
        }
      sleep (1);
    }
  return NULL;
}

static void
start_net (const struct config *cfg)
{
  static unsigned long port;
  pthread_t th;
  int rc;
  if (cfg->echo_port != 0)
    {
      port = cfg->echo_port;
      rc = pthread_create (&th, NULL, echo_main, &port);
      if (rc != 0)
        out_line ("DROVER-GUEST error pthread_create: %s", strerror (rc));
      else
        pthread_detach (th);
    }
  if (cfg->probe[0] != '\0')
    {
      static char spec[sizeof cfg->probe];
      memcpy (spec, cfg->probe, sizeof spec);
      rc = pthread_create (&th, NULL, probe_main, spec);
      if (rc != 0)
        out_line ("DROVER-GUEST error pthread_create: %s", strerror (rc));
      else
        pthread_detach (th);
    }
}

/* ---- heartbeat -------------------------------------------------------- */

static int
open_console (void)
{
  static const char *const paths[] = { "/dev/ttyS0", "/dev/console" };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    {
      int fd = open (paths[i], O_WRONLY | O_NOCTTY | O_CLOEXEC);
      if (fd < 0)
        continue;
      /* Plain "\n" line ends: no "\r" inserted by the tty. */
      struct termios t;
      if (tcgetattr (fd, &t) == 0)
        {
          t.c_oflag &= ~(tcflag_t)OPOST;
          tcsetattr (fd, TCSANOW, &t);
        }
      return fd;
    }
  return STDOUT_FILENO;
}

static void
heartbeat_loop (unsigned long hb_ms)
{
  uint64_t period_ns = (uint64_t)hb_ms * 1000000ULL;
  struct timespec next;
  clock_gettime (CLOCK_MONOTONIC, &next);
  unsigned long long counter = 0;
  for (;;)
    {
      out_line ("HB %llu %llu", ++counter, (unsigned long long)now_ms ());
      ts_add_ns (&next, period_ns);
      struct timespec now;
      clock_gettime (CLOCK_MONOTONIC, &now);
      /* Skip slots missed while stopped rather than bursting. */
      while (ts_before (&next, &now))
        ts_add_ns (&next, period_ns);
      sleep_until (&next);
    }
}

/* MemAvailable in MiB, or 0 when unknown. */
static unsigned long
mem_available_mib (void)
{
  FILE *f = fopen ("/proc/meminfo", "re");
  if (f == NULL)
    return 0;
  char line[128];
  unsigned long kib = 0;
  while (fgets (line, sizeof line, f) != NULL)
    {
      if (sscanf (line, "MemAvailable: %lu kB", &kib) == 1)
        break;
    }
  fclose (f);
  return kib / 1024;
}

static int
dump_main (int argc, char **argv)
{
  if (argc != 4)
    {
      fprintf (stderr, "usage: %s --dump zero|text|random MIB\n", argv[0]);
      return 2;
    }
  struct config cfg;
  char arg[64];
  snprintf (arg, sizeof arg, "drover.data=%s", argv[2]);
  config_parse (&cfg, arg);
  struct filler f;
  filler_init (&f, cfg.data);
  unsigned long pages = parse_ul (argv[3], 1) * (MIB / PAGE_SZ);
  static char page[PAGE_SZ];
  for (unsigned long i = 0; i < pages; i++)
    {
      fill_page (&f, page);
      if (fwrite (page, 1, PAGE_SZ, stdout) != PAGE_SZ)
        return 1;
    }
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc > 1 && strcmp (argv[1], "--dump") == 0)
    return dump_main (argc, argv);

  struct config cfg;
  config_parse (&cfg, read_cmdline ());
  out_fd = open_console ();

  /* Being OOM-killed would also end the heartbeat: keep W within what
   * the guest has, leaving some room for the kernel and busybox. */
  unsigned long avail = mem_available_mib ();
  if (cfg.ws_mib > 0 && avail > 0 && cfg.ws_mib + 12 > avail)
    {
      unsigned long fit = avail > 12 ? avail - 12 : 0;
      out_line ("DROVER-GUEST error ws=%lu MiB does not fit (MemAvailable %lu "
                "MiB), using %lu",
                cfg.ws_mib, avail, fit);
      cfg.ws_mib = fit;
    }
  out_line ("DROVER-GUEST up ws=%lu rate=%lu data=%s hb=%lu", cfg.ws_mib,
            cfg.rate_mib, data_names[cfg.data], cfg.hb_ms);
  if (cfg.ws_mib > 0)
    start_dirtier (&cfg);
  if (cfg.disk_check)
    start_disk_writer (&cfg);
  start_net (&cfg);
  heartbeat_loop (cfg.hb_ms);
  return 0;
}
