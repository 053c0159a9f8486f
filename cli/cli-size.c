/* droverctl's sizes: proto_parse_size, plus what a CLI flag needs. */
#include "cli.h"

#include "proto.h"

G_DEFINE_QUARK (drover_cli_error, cli_error)

gboolean
cli_parse_size (const char *what, const char *text, guint64 *out,
                GError **error)
{
  g_autoptr (GError) local = NULL;
  guint64 value;

  if (!proto_parse_size (what, text, &value, &local))
    {
      g_set_error_literal (error, CLI_ERROR, CLI_ERROR_USAGE, local->message);
      return FALSE;
    }
  if (value == 0)
    {
      g_set_error (error, CLI_ERROR, CLI_ERROR_USAGE,
                   "%s: size must be greater than zero", what);
      return FALSE;
    }
  *out = value;
  return TRUE;
}
