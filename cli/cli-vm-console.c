/* droverctl vm console: the serial console log, once or followed. */
#include "cli-vm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t console_stop;

static void
on_stop_signal (int sig)
{
  console_stop = 1;
}

static gboolean
write_all (const guint8 *data, gsize len)
{
  /* stdout may be a pipe or a terminal: loop on short writes. */
  while (len > 0)
    {
      ssize_t n = write (STDOUT_FILENO, data, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return FALSE;
        }
      data += n;
      len -= (gsize)n;
    }
  return TRUE;
}

int
cli_vm_console (Ctl *ctl, int argc, char **argv)
{
  gboolean follow = FALSE;
  gint64 tail = -1;
  const GOptionEntry entries[]
      = { { "follow", 'f', 0, G_OPTION_ARG_NONE, &follow,
            "Keep printing new output until interrupted", NULL },
          { "tail", 0, 0, G_OPTION_ARG_INT64, &tail,
            "Start this many bytes before the end", "BYTES" },
          { NULL } };
  const char *usage = "vm console NAME [-f] [--tail BYTES]";
  Drover__V1__ConsoleRequest req = DROVER__V1__CONSOLE_REQUEST__INIT;
  const char *name;
  gint64 offset;
  int rc = 0;

  if ((rc = cli_vm_parse (usage, "Print the VM's serial console log.", entries,
                          argc, argv, &name))
      >= 0)
    return rc;
  if (tail == 0 || tail < -1)
    return ctl_usage_error (usage, "--tail must be a positive number of bytes");
  offset = tail > 0 ? -tail : 0;

  if (follow)
    {
      struct sigaction sa = { 0 };
      /* No SA_RESTART: the poll sleep must end at once. */
      sa.sa_handler = on_stop_signal;
      sigemptyset (&sa.sa_mask);
      sigaction (SIGINT, &sa, NULL);
      sigaction (SIGTERM, &sa, NULL);
    }

  req.name = (char *)name;
  while (!console_stop)
    {
      g_autoptr (ProtobufCMessage) msg = NULL;
      g_autoptr (GError) error = NULL;
      const Drover__V1__ConsoleChunk *chunk;

      req.offset = offset;
      msg = ctl_call (ctl, DROVER_SCHED_METHOD_READ_CONSOLE, &req.base, 0,
                      &error);
      if (msg == NULL)
        {
          if (console_stop)
            break;
          return ctl_fail (error);
        }
      chunk = (const Drover__V1__ConsoleChunk *)msg;
      if (chunk->data.len > 0 && !write_all (chunk->data.data, chunk->data.len))
        {
          ctl_print_error ("writing to stdout: %s", g_strerror (errno));
          return CTL_EXIT_FAILURE;
        }
      if (chunk->next_offset > offset || offset < 0)
        offset = chunk->next_offset;
      if (chunk->data.len > 0 && offset < chunk->size)
        continue; /* more is already there */
      if (!follow)
        break;
      if (chunk->size < offset)
        offset = 0; /* the log was truncated (VM recreated): start over */
      /* Poll every 250 ms, waking early on a signal. */
      for (int i = 0; i < 5 && !console_stop; i++)
        g_usleep (50 * 1000);
    }
  return CTL_EXIT_OK;
}
