/* What the scheduler accepts as an agent's address: it dials that address
 * for every command to the host, so it must be a plain IP literal and
 * port, never one of gRPC's other target forms ("unix:PATH",
 * "dns:///NAME", "ipv4:A,B", a name to resolve) that would let a host
 * point the scheduler's calls somewhere else. */
#include "sched-private.h"

#include <arpa/inet.h>
#include <string.h>

/* "[" IPv6 "]" ":" port is the longest form: 45 + 2 + 1 + 5. */
#define SCHED_ADDRESS_MAX 64

/* TEXT is a decimal port 1..65535 without sign, space or leading zero. */
static gboolean
port_ok (const char *text)
{
  gsize len = strlen (text);
  guint port = 0;

  if (len < 1 || len > 5 || text[0] == '0')
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (!g_ascii_isdigit (text[i]))
        return FALSE;
      port = port * 10 + (guint)(text[i] - '0');
    }
  return port <= 65535;
}

gboolean
sched_address_check (const char *address, GError **error)
{
  char host[SCHED_ADDRESS_MAX + 1];
  const char *port;
  guint8 buf[16];
  int family;
  gsize len = address ? strnlen (address, SCHED_ADDRESS_MAX + 1) : 0;

  if (len == 0 || len > SCHED_ADDRESS_MAX)
    goto refuse;
  if (address[0] == '[')
    {
      /* [IPv6]:port */
      const char *end = strchr (address, ']');

      if (end == NULL || end[1] != ':')
        goto refuse;
      family = AF_INET6;
      memcpy (host, address + 1, end - address - 1);
      host[end - address - 1] = '\0';
      port = end + 2;
    }
  else
    {
      /* IPv4:port; exactly one colon. */
      const char *colon = strchr (address, ':');

      if (colon == NULL || strchr (colon + 1, ':') != NULL)
        goto refuse;
      family = AF_INET;
      memcpy (host, address, colon - address);
      host[colon - address] = '\0';
      port = colon + 1;
    }
  /* inet_pton takes only the numeric forms: four dotted decimals without
   * leading zeros for IPv4, hex groups for IPv6 (no zone, no brackets). */
  if (inet_pton (family, host, buf) == 1 && port_ok (port))
    return TRUE;

refuse:
  {
    /* Quoted as far as the limit, control bytes escaped: it goes to logs. */
    g_autofree char *cut
        = g_strndup (address ? address : "", SCHED_ADDRESS_MAX);
    g_autofree char *quoted = g_strescape (cut, NULL);

    g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                 "agent address '%s' is not an IP address and port "
                 "(127.0.0.2:7401 or [::1]:7401)",
                 quoted);
  }
  return FALSE;
}
