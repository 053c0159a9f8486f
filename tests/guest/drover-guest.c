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
 *   drover.noagent     do not answer as the QEMU guest agent (below)
 *   drover.ipN=ADDR/LEN  (N = 1..7) whenever ethN appears (a NIC
 *                      hot-plugged after boot, or at boot), bring it up
 *                      with that address: "DROVER-GUEST net ethN ADDR/LEN"
 *                      (or "net ethN failed")
 *   (drover.ip=ADDR/LEN configures eth0 in /init before this starts)
 *
 * Guest agent: when the VM has a virtio-serial port named
 * org.qemu.guest_agent.0 (/sys/class/virtio-ports/ * /name), a thread
 * answers the QEMU guest agent protocol on it: guest-sync,
 * guest-sync-delimited, guest-ping, guest-info,
 * guest-network-get-interfaces (the guest's own interfaces and
 * addresses), guest-fsfreeze-status, -freeze (the disk writer stops
 * between two block writes and the disk is flushed) and -thaw; any other
 * command gets a CommandNotFound error. `drover-guest --qga-stdio`
 * speaks the same protocol on stdin/stdout (host-side tests).
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
 *   DROVER-GUEST agent listening /dev/vportNpM | agent no port <name>
 *   DROVER-GUEST fsfreeze frozen | fsfreeze thawed
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
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/fs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
  int agent;               /* 0 with drover.noagent */
  char nic_ip[8][20];      /* drover.ipN=ADDR/LEN for ethN, N = 1..7 */
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
  cfg->agent = 1;
  memset (cfg->nic_ip, 0, sizeof cfg->nic_ip);

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
      else if (strcmp (tok, "drover.noagent") == 0)
        cfg->agent = 0;
      else if (strncmp (tok, "drover.ip", 9) == 0 && tok[9] >= '1'
               && tok[9] <= '7' && tok[10] == '=')
        {
          /* Digits, dots and one slash only: it goes to ip(8) as one
           * argument. */
          const char *v = tok + 11;
          int n = tok[9] - '0';
          if (strlen (v) < sizeof cfg->nic_ip[n] && v[0] != '\0'
              && strspn (v, "0123456789./") == strlen (v))
            snprintf (cfg->nic_ip[n], sizeof cfg->nic_ip[n], "%s", v);
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

/* Freezing (guest-fsfreeze-freeze): the writer checks `frozen` before
 * each block it writes and waits while it is set; the freezer sets it,
 * waits until no write is under way, then flushes the disk. */
static struct
{
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int frozen;
  int writing;
  int fd; /* the writer's vda, -1 while it has none */
} fz = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, -1 };

static void
disk_write_begin (void)
{
  pthread_mutex_lock (&fz.mu);
  while (fz.frozen)
    pthread_cond_wait (&fz.cond, &fz.mu);
  fz.writing = 1;
  pthread_mutex_unlock (&fz.mu);
}

static void
disk_write_end (void)
{
  pthread_mutex_lock (&fz.mu);
  fz.writing = 0;
  pthread_cond_broadcast (&fz.cond);
  pthread_mutex_unlock (&fz.mu);
}

/* 0 when frozen (writer parked, disk flushed), -1 with *why set. */
static int
fs_freeze (const char **why)
{
  struct timespec dl;
  clock_gettime (CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock (&fz.mu);
  if (fz.frozen)
    {
      pthread_mutex_unlock (&fz.mu);
      *why = "the filesystems are already frozen";
      return -1;
    }
  fz.frozen = 1;
  int rc = 0;
  while (fz.writing && rc == 0)
    rc = pthread_cond_timedwait (&fz.cond, &fz.mu, &dl);
  if (fz.writing)
    {
      fz.frozen = 0;
      pthread_cond_broadcast (&fz.cond);
      pthread_mutex_unlock (&fz.mu);
      *why = "the disk writer did not stop within 10 s";
      return -1;
    }
  int fd = fz.fd;
  pthread_mutex_unlock (&fz.mu);
  sync ();
  if (fd >= 0 && fdatasync (fd) != 0)
    {
      pthread_mutex_lock (&fz.mu);
      fz.frozen = 0;
      pthread_cond_broadcast (&fz.cond);
      pthread_mutex_unlock (&fz.mu);
      *why = "flushing the disk failed";
      return -1;
    }
  return 0;
}

/* 1 if it was frozen, 0 if it was not. */
static int
fs_thaw (void)
{
  pthread_mutex_lock (&fz.mu);
  int was = fz.frozen;
  fz.frozen = 0;
  pthread_cond_broadcast (&fz.cond);
  pthread_mutex_unlock (&fz.mu);
  return was;
}

static int
fs_frozen (void)
{
  pthread_mutex_lock (&fz.mu);
  int f = fz.frozen;
  pthread_mutex_unlock (&fz.mu);
  return f;
}

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

  pthread_mutex_lock (&fz.mu);
  fz.fd = fd;
  pthread_mutex_unlock (&fz.mu);

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
      disk_write_begin ();
      int failed = disk_pio (fd, w, 0, 1) != 0;
      disk_write_end ();
      for (uint64_t i = 1; i <= n && !failed; i++)
        {
          disk_fill_block (w, gen, i);
          disk_write_begin ();
          if (disk_pio (fd, w, i, 1) != 0)
            failed = 1;
          disk_write_end ();
        }
      disk_write_begin ();
      if (!failed && fdatasync (fd) != 0)
        failed = 1;
      disk_write_end ();
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
  pthread_mutex_lock (&fz.mu);
  fz.fd = -1;
  pthread_mutex_unlock (&fz.mu);
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

/* ---- QEMU guest agent -------------------------------------------------- */

/* The guest side of the QEMU guest agent protocol on the virtio-serial
 * port named org.qemu.guest_agent.0: one JSON object per request,
 * {"execute": NAME, "arguments": {...}}, one JSON object per answer,
 * {"return": ...} or {"error": {"class": ..., "desc": ...}}, each
 * answer ended by "\n". A 0xFF byte from the host resets the request
 * parser (what came before it is dropped); guest-sync-delimited puts a
 * 0xFF byte before its answer so the host can skip stale output. */

#define QGA_PORT_NAME "org.qemu.guest_agent.0"
#define QGA_MAX_REQ 65536 /* longer requests are dropped with an error */
#define QGA_MAX_DEPTH 32
#define QGA_MAX_IFACES 16
#define QGA_MAX_ADDRS 16

struct jparse
{
  const char *p, *end;
  int depth;
};

static void
j_ws (struct jparse *j)
{
  while (j->p < j->end
         && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static int
j_lit (struct jparse *j, const char *lit)
{
  size_t n = strlen (lit);
  if ((size_t)(j->end - j->p) < n || memcmp (j->p, lit, n) != 0)
    return -1;
  j->p += n;
  return 0;
}

/* A string; its text (escapes decoded, non-ASCII \u as '?') into OUT when
 * OUT is not NULL, cut to OUTSZ - 1 bytes. */
static int
j_string (struct jparse *j, char *out, size_t outsz)
{
  size_t o = 0;
  if (j->p >= j->end || *j->p != '"')
    return -1;
  j->p++;
  while (j->p < j->end)
    {
      unsigned char c = (unsigned char)*j->p++;
      if (c == '"')
        {
          if (out)
            out[o] = '\0';
          return 0;
        }
      if (c < 0x20)
        return -1;
      if (c == '\\')
        {
          if (j->p >= j->end)
            return -1;
          char e = *j->p++;
          switch (e)
            {
            case '"':
            case '\\':
            case '/':
              c = (unsigned char)e;
              break;
            case 'b':
              c = '\b';
              break;
            case 'f':
              c = '\f';
              break;
            case 'n':
              c = '\n';
              break;
            case 'r':
              c = '\r';
              break;
            case 't':
              c = '\t';
              break;
            case 'u':
              {
                unsigned v = 0;
                for (int i = 0; i < 4; i++)
                  {
                    if (j->p >= j->end)
                      return -1;
                    char h = *j->p++;
                    v <<= 4;
                    if (h >= '0' && h <= '9')
                      v |= (unsigned)(h - '0');
                    else if (h >= 'a' && h <= 'f')
                      v |= (unsigned)(h - 'a' + 10);
                    else if (h >= 'A' && h <= 'F')
                      v |= (unsigned)(h - 'A' + 10);
                    else
                      return -1;
                  }
                c = v > 0 && v < 0x80 ? (unsigned char)v : '?';
                break;
              }
            default:
              return -1;
            }
        }
      if (out && o + 1 < outsz)
        out[o++] = (char)c;
    }
  return -1;
}

/* A number; an integer's value into *V (when not NULL and it fits). */
static int
j_number (struct jparse *j, long long *v, int *is_int)
{
  const char *s = j->p;
  if (j->p < j->end && *j->p == '-')
    j->p++;
  if (j->p >= j->end || *j->p < '0' || *j->p > '9')
    return -1;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
    j->p++;
  int integral = 1;
  if (j->p < j->end && *j->p == '.')
    {
      integral = 0;
      j->p++;
      if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return -1;
      while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E'))
    {
      integral = 0;
      j->p++;
      if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
        j->p++;
      if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return -1;
      while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    }
  if (is_int)
    *is_int = 0;
  if (integral && v && j->p - s < 21)
    {
      char buf[24];
      memcpy (buf, s, (size_t)(j->p - s));
      buf[j->p - s] = '\0';
      errno = 0;
      long long x = strtoll (buf, NULL, 10);
      if (errno == 0)
        {
          *v = x;
          if (is_int)
            *is_int = 1;
        }
    }
  return 0;
}

static int j_value (struct jparse *j);

/* An object; for each member KEY_CB (when not NULL) gets the key and
 * parses the value itself (returning -1 on bad input), else it is
 * skipped. */
typedef int (*j_member_cb) (struct jparse *j, const char *key, void *ud);

static int
j_object (struct jparse *j, j_member_cb cb, void *ud)
{
  if (j->p >= j->end || *j->p != '{' || ++j->depth > QGA_MAX_DEPTH)
    return -1;
  j->p++;
  j_ws (j);
  if (j->p < j->end && *j->p == '}')
    {
      j->p++;
      j->depth--;
      return 0;
    }
  for (;;)
    {
      char key[64];
      j_ws (j);
      if (j_string (j, key, sizeof key) != 0)
        return -1;
      j_ws (j);
      if (j->p >= j->end || *j->p != ':')
        return -1;
      j->p++;
      j_ws (j);
      if ((cb ? cb (j, key, ud) : j_value (j)) != 0)
        return -1;
      j_ws (j);
      if (j->p < j->end && *j->p == ',')
        {
          j->p++;
          continue;
        }
      if (j->p < j->end && *j->p == '}')
        {
          j->p++;
          j->depth--;
          return 0;
        }
      return -1;
    }
}

static int
j_array (struct jparse *j)
{
  if (j->p >= j->end || *j->p != '[' || ++j->depth > QGA_MAX_DEPTH)
    return -1;
  j->p++;
  j_ws (j);
  if (j->p < j->end && *j->p == ']')
    {
      j->p++;
      j->depth--;
      return 0;
    }
  for (;;)
    {
      j_ws (j);
      if (j_value (j) != 0)
        return -1;
      j_ws (j);
      if (j->p < j->end && *j->p == ',')
        {
          j->p++;
          continue;
        }
      if (j->p < j->end && *j->p == ']')
        {
          j->p++;
          j->depth--;
          return 0;
        }
      return -1;
    }
}

static int
j_value (struct jparse *j)
{
  if (j->p >= j->end)
    return -1;
  switch (*j->p)
    {
    case '{':
      return j_object (j, NULL, NULL);
    case '[':
      return j_array (j);
    case '"':
      return j_string (j, NULL, 0);
    case 't':
      return j_lit (j, "true");
    case 'f':
      return j_lit (j, "false");
    case 'n':
      return j_lit (j, "null");
    default:
      return j_number (j, NULL, NULL);
    }
}

struct qga_req
{
  char execute[64];
  int has_execute;
  int has_args;
  int has_id;
  long long id;
};

static int
qga_args_member (struct jparse *j, const char *key, void *ud)
{
  struct qga_req *r = ud;
  if (strcmp (key, "id") == 0 && j->p < j->end && *j->p != '{' && *j->p != '['
      && *j->p != '"')
    {
      int is_int = 0;
      if (j_number (j, &r->id, &is_int) != 0)
        return -1;
      r->has_id = is_int;
      return 0;
    }
  return j_value (j);
}

static int
qga_req_member (struct jparse *j, const char *key, void *ud)
{
  struct qga_req *r = ud;
  if (strcmp (key, "execute") == 0 && j->p < j->end && *j->p == '"')
    {
      r->has_execute = 1;
      return j_string (j, r->execute, sizeof r->execute);
    }
  if (strcmp (key, "arguments") == 0 && j->p < j->end && *j->p == '{')
    {
      r->has_args = 1;
      return j_object (j, qga_args_member, r);
    }
  return j_value (j);
}

/* Parses one request; 0 when it is an object, -1 when it is not JSON. */
static int
qga_parse (const char *text, size_t len, struct qga_req *r)
{
  struct jparse j = { text, text + len, 0 };
  memset (r, 0, sizeof *r);
  j_ws (&j);
  if (j_object (&j, qga_req_member, r) != 0)
    return -1;
  j_ws (&j);
  return j.p == j.end ? 0 : -1;
}

/* ---- answers ---- */

struct obuf
{
  char *buf;
  size_t len, cap;
  int overflow;
};

static void
ob_add (struct obuf *o, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (o->buf + o->len, o->cap - o->len, fmt, ap);
  va_end (ap);
  if (n < 0 || (size_t)n >= o->cap - o->len)
    {
      o->overflow = 1;
      return;
    }
  o->len += (size_t)n;
}

/* A JSON string of S (only plain characters survive; others become
 * '?'). */
static void
ob_str (struct obuf *o, const char *s)
{
  ob_add (o, "\"");
  for (; *s; s++)
    {
      unsigned char c = (unsigned char)*s;
      if (c == '"' || c == '\\')
        ob_add (o, "\\%c", c);
      else if (c < 0x20 || c >= 0x7f)
        ob_add (o, "?");
      else
        ob_add (o, "%c", c);
    }
  ob_add (o, "\"");
}

static void
qga_error (struct obuf *o, const char *cls, const char *desc)
{
  ob_add (o, "{\"error\": {\"class\": ");
  ob_str (o, cls);
  ob_add (o, ", \"desc\": ");
  ob_str (o, desc);
  ob_add (o, "}}");
}

static const char *const qga_commands[] = { "guest-sync",
                                            "guest-sync-delimited",
                                            "guest-ping",
                                            "guest-info",
                                            "guest-network-get-interfaces",
                                            "guest-fsfreeze-status",
                                            "guest-fsfreeze-freeze",
                                            "guest-fsfreeze-thaw" };
#define QGA_N_COMMANDS (sizeof qga_commands / sizeof qga_commands[0])

static void
qga_interfaces (struct obuf *o)
{
  struct ifaddrs *ifa = NULL;
  if (getifaddrs (&ifa) != 0)
    {
      qga_error (o, "GenericError", "getifaddrs failed");
      return;
    }
  /* The names in first-seen order, each once. */
  char names[QGA_MAX_IFACES][IF_NAMESIZE + 1];
  int nn = 0;
  for (struct ifaddrs *a = ifa; a; a = a->ifa_next)
    {
      int seen = 0;
      for (int i = 0; i < nn && !seen; i++)
        seen = strcmp (names[i], a->ifa_name) == 0;
      if (!seen && nn < QGA_MAX_IFACES && strlen (a->ifa_name) <= IF_NAMESIZE)
        snprintf (names[nn++], sizeof names[0], "%s", a->ifa_name);
    }
  ob_add (o, "{\"return\": [");
  for (int i = 0; i < nn; i++)
    {
      ob_add (o, "%s{\"name\": ", i ? ", " : "");
      ob_str (o, names[i]);
      char path[64], mac[32] = "";
      snprintf (path, sizeof path, "/sys/class/net/%s/address", names[i]);
      int fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd >= 0)
        {
          ssize_t n = read (fd, mac, sizeof mac - 1);
          close (fd);
          mac[n > 0 ? n : 0] = '\0';
          mac[strcspn (mac, "\n")] = '\0';
        }
      if (mac[0] != '\0')
        {
          ob_add (o, ", \"hardware-address\": ");
          ob_str (o, mac);
        }
      ob_add (o, ", \"ip-addresses\": [");
      int na = 0;
      for (struct ifaddrs *a = ifa; a; a = a->ifa_next)
        {
          if (strcmp (a->ifa_name, names[i]) != 0 || a->ifa_addr == NULL
              || na == QGA_MAX_ADDRS)
            continue;
          int fam = a->ifa_addr->sa_family;
          if (fam != AF_INET && fam != AF_INET6)
            continue;
          char ip[INET6_ADDRSTRLEN] = "";
          const void *src
              = fam == AF_INET
                    ? (const void *)&((struct sockaddr_in *)(void *)a->ifa_addr)
                          ->sin_addr
                    : (const void *)&(
                          (struct sockaddr_in6 *)(void *)a->ifa_addr)
                          ->sin6_addr;
          if (inet_ntop (fam, src, ip, sizeof ip) == NULL)
            continue;
          int prefix = 0;
          if (a->ifa_netmask)
            {
              const unsigned char *m
                  = fam == AF_INET
                        ? (const unsigned char *)&(
                              (struct sockaddr_in *)(void *)a->ifa_netmask)
                              ->sin_addr
                        : (const unsigned char *)&(
                              (struct sockaddr_in6 *)(void *)a->ifa_netmask)
                              ->sin6_addr;
              for (int b = 0; b < (fam == AF_INET ? 4 : 16); b++)
                prefix += __builtin_popcount (m[b]);
            }
          ob_add (o, "%s{\"ip-address-type\": \"%s\", \"ip-address\": ",
                  na ? ", " : "", fam == AF_INET ? "ipv4" : "ipv6");
          ob_str (o, ip);
          ob_add (o, ", \"prefix\": %d}", prefix);
          na++;
        }
      ob_add (o, "]}");
    }
  ob_add (o, "]}");
  freeifaddrs (ifa);
}

/* The answer to the request TEXT (LEN bytes) into O; *DELIM set when a
 * 0xFF byte goes before it. */
static void
qga_handle (const char *text, size_t len, struct obuf *o, int *delim)
{
  struct qga_req r;
  *delim = 0;
  if (qga_parse (text, len, &r) != 0)
    {
      qga_error (o, "GenericError", "Invalid JSON");
      return;
    }
  if (!r.has_execute)
    {
      qga_error (o, "GenericError", "Expected 'execute' in the request");
      return;
    }
  const char *c = r.execute;
  if (strcmp (c, "guest-sync") == 0 || strcmp (c, "guest-sync-delimited") == 0)
    {
      if (!r.has_id)
        {
          qga_error (o, "GenericError", "Parameter 'id' is missing");
          return;
        }
      *delim = strcmp (c, "guest-sync-delimited") == 0;
      ob_add (o, "{\"return\": %lld}", r.id);
    }
  else if (strcmp (c, "guest-ping") == 0)
    ob_add (o, "{\"return\": {}}");
  else if (strcmp (c, "guest-info") == 0)
    {
      ob_add (o, "{\"return\": {\"version\": \"drover-guest 1\", "
                 "\"supported_commands\": [");
      for (size_t i = 0; i < QGA_N_COMMANDS; i++)
        ob_add (o,
                "%s{\"name\": \"%s\", \"enabled\": true, "
                "\"success-response\": true}",
                i ? ", " : "", qga_commands[i]);
      ob_add (o, "]}}");
    }
  else if (strcmp (c, "guest-network-get-interfaces") == 0)
    qga_interfaces (o);
  else if (strcmp (c, "guest-fsfreeze-status") == 0)
    ob_add (o, "{\"return\": \"%s\"}", fs_frozen () ? "frozen" : "thawed");
  else if (strcmp (c, "guest-fsfreeze-freeze") == 0)
    {
      const char *why = "";
      if (fs_freeze (&why) != 0)
        qga_error (o, "GenericError", why);
      else
        {
          out_line ("DROVER-GUEST fsfreeze frozen");
          ob_add (o, "{\"return\": 1}");
        }
    }
  else if (strcmp (c, "guest-fsfreeze-thaw") == 0)
    {
      int was = fs_thaw ();
      if (was)
        out_line ("DROVER-GUEST fsfreeze thawed");
      ob_add (o, "{\"return\": %d}", was);
    }
  else
    {
      char desc[128];
      snprintf (desc, sizeof desc, "The command %s has not been found", c);
      qga_error (o, "CommandNotFound", desc);
    }
}

/* Request framing: bytes are collected until a top-level JSON value is
 * complete (braces and brackets counted outside strings). */
struct qga_conn
{
  char req[QGA_MAX_REQ];
  size_t len;
  int depth, in_str, esc, started, too_long;
};

static void
qga_reset (struct qga_conn *q)
{
  q->len = 0;
  q->depth = q->in_str = q->esc = q->started = q->too_long = 0;
}

static int
write_all (int fd, const char *p, size_t n)
{
  while (n > 0)
    {
      ssize_t w = write (fd, p, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return -1;
      p += w;
      n -= (size_t)w;
    }
  return 0;
}

static void
qga_answer (int fd, const char *text, size_t len)
{
  static char buf[16384];
  struct obuf o = { buf, 0, sizeof buf - 1, 0 };
  int delim = 0;
  qga_handle (text, len, &o, &delim);
  if (o.overflow)
    {
      o.len = 0;
      o.overflow = 0;
      qga_error (&o, "GenericError", "The answer is too long");
    }
  buf[o.len++] = '\n';
  if (delim)
    write_all (fd, "\xff", 1);
  write_all (fd, buf, o.len);
}

/* Feeds N bytes read from the host; answers to OUT_FD. */
static void
qga_feed (struct qga_conn *q, const char *data, size_t n, int out_fd)
{
  for (size_t i = 0; i < n; i++)
    {
      char c = data[i];
      if ((unsigned char)c == 0xff)
        {
          qga_reset (q);
          continue;
        }
      if (!q->started)
        {
          if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
          q->started = 1;
        }
      if (q->len < sizeof q->req)
        q->req[q->len++] = c;
      else
        q->too_long = 1;
      if (q->in_str)
        {
          if (q->esc)
            q->esc = 0;
          else if (c == '\\')
            q->esc = 1;
          else if (c == '"')
            q->in_str = 0;
          continue;
        }
      if (c == '"')
        q->in_str = 1;
      else if (c == '{' || c == '[')
        q->depth++;
      else if (c == '}' || c == ']')
        q->depth--;
      /* Complete: the braces balance again, or a non-object value ended
       * at a line end (answered as invalid). */
      if ((q->depth <= 0 && (c == '}' || c == ']'))
          || (q->depth == 0 && c == '\n'))
        {
          if (q->too_long)
            {
              struct obuf o;
              static char eb[256];
              o = (struct obuf){ eb, 0, sizeof eb - 1, 0 };
              qga_error (&o, "GenericError", "The request is too long");
              eb[o.len++] = '\n';
              write_all (out_fd, eb, o.len);
            }
          else
            qga_answer (out_fd, q->req, q->len);
          qga_reset (q);
        }
    }
}

/* The /dev node of the virtio port named NAME, or -1. */
static int
qga_find_port (char *dev, size_t devsz)
{
  static const char base[] = "/sys/class/virtio-ports";
  char path[256];
  for (int i = 0; i < 64; i++)
    for (int p = 0; p < 32; p++)
      {
        snprintf (path, sizeof path, "%s/vport%dp%d/name", base, i, p);
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
          continue;
        char name[64];
        ssize_t n = read (fd, name, sizeof name - 1);
        close (fd);
        name[n > 0 ? n : 0] = '\0';
        name[strcspn (name, "\n")] = '\0';
        if (strcmp (name, QGA_PORT_NAME) == 0)
          {
            snprintf (dev, devsz, "/dev/vport%dp%d", i, p);
            return 0;
          }
      }
  return -1;
}

static void *
qga_main (void *arg)
{
  (void)arg;
  char dev[64];
  int found = -1;
  for (int tries = 0; tries < 50 && found != 0; tries++)
    {
      found = qga_find_port (dev, sizeof dev);
      if (found != 0)
        usleep (100000);
    }
  if (found != 0)
    {
      out_line ("DROVER-GUEST agent no port %s", QGA_PORT_NAME);
      return NULL;
    }
  int fd = -1;
  for (int tries = 0; tries < 50 && fd < 0; tries++)
    {
      fd = open (dev, O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (fd < 0)
        usleep (100000);
    }
  if (fd < 0)
    {
      out_line ("DROVER-GUEST error agent open %s: %s", dev, strerror (errno));
      return NULL;
    }
  out_line ("DROVER-GUEST agent listening %s", dev);
  static struct qga_conn q;
  qga_reset (&q);
  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      int rc = poll (&pfd, 1, 1000);
      if (rc < 0 && errno != EINTR)
        {
          out_line ("DROVER-GUEST error agent poll: %s", strerror (errno));
          return NULL;
        }
      if (rc <= 0)
        continue;
      if (!(pfd.revents & POLLIN))
        {
          /* POLLHUP: nobody on the host side; a new one starts afresh. */
          qga_reset (&q);
          usleep (200000);
          continue;
        }
      char buf[4096];
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (n <= 0)
        {
          qga_reset (&q);
          usleep (200000);
          continue;
        }
      qga_feed (&q, buf, (size_t)n, fd);
    }
}

static void
start_agent (void)
{
  pthread_t th;
  int rc = pthread_create (&th, NULL, qga_main, NULL);
  if (rc != 0)
    out_line ("DROVER-GUEST error pthread_create: %s", strerror (rc));
  else
    pthread_detach (th);
}

/* Host-side test mode: the agent protocol on stdin/stdout. */
static int
qga_stdio_main (void)
{
  static struct qga_conn q;
  qga_reset (&q);
  out_fd = STDERR_FILENO;
  char buf[4096];
  for (;;)
    {
      ssize_t n = read (STDIN_FILENO, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return 0;
      qga_feed (&q, buf, (size_t)n, STDOUT_FILENO);
    }
}

/* ---- NICs that appear after boot ------------------------------------ */

/* Runs /bin/ip with ARGV (NULL-terminated); 0 when it exits 0. */
static int
run_ip (char *const argv[])
{
  pid_t pid = fork ();
  if (pid < 0)
    return -1;
  if (pid == 0)
    {
      int fd = open ("/dev/null", O_RDWR);
      if (fd >= 0)
        {
          dup2 (fd, 1);
          dup2 (fd, 2);
        }
      execv ("/bin/ip", argv);
      _exit (127);
    }
  int st = 0;
  while (waitpid (pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED (st) && WEXITSTATUS (st) == 0 ? 0 : -1;
}

/* drover.ipN: whenever ethN (N = 1..7) exists and is not configured yet
 * (a NIC hot-plugged after boot, or plugged again), it goes up with that
 * address. eth0 is /init's (drover.ip). */
static void *
hotnic_main (void *arg)
{
  const struct config *cfg = arg;
  int done[8] = { 0 };
  for (;;)
    {
      for (int n = 1; n <= 7; n++)
        {
          if (cfg->nic_ip[n][0] == '\0')
            continue;
          char path[64], dev[8];
          snprintf (dev, sizeof dev, "eth%d", n);
          snprintf (path, sizeof path, "/sys/class/net/%s", dev);
          if (access (path, F_OK) != 0)
            {
              done[n] = 0; /* unplugged: configure it again if it returns */
              continue;
            }
          if (done[n])
            continue;
          char *up[] = { "ip", "link", "set", dev, "up", NULL };
          char *add[] = { "ip",  "addr", "add", (char *)cfg->nic_ip[n],
                          "dev", dev,    NULL };
          done[n] = 1;
          if (run_ip (up) == 0 && run_ip (add) == 0)
            out_line ("DROVER-GUEST net %s %s", dev, cfg->nic_ip[n]);
          else
            out_line ("DROVER-GUEST net %s failed", dev);
        }
      usleep (300000);
    }
  return NULL;
}

static void
start_hotnic (const struct config *cfg)
{
  static struct config copy;
  int any = 0;
  for (int n = 1; n <= 7; n++)
    any |= cfg->nic_ip[n][0] != '\0';
  if (!any)
    return;
  copy = *cfg;
  pthread_t th;
  int rc = pthread_create (&th, NULL, hotnic_main, &copy);
  if (rc != 0)
    out_line ("DROVER-GUEST error pthread_create: %s", strerror (rc));
  else
    pthread_detach (th);
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
  if (argc > 1 && strcmp (argv[1], "--qga-stdio") == 0)
    return qga_stdio_main ();

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
  if (cfg.agent)
    start_agent ();
  start_hotnic (&cfg);
  heartbeat_loop (cfg.hb_ms);
  return 0;
}
