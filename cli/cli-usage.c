/* A subcommand's options parsed from its usage line. */
#include "droverctl.h"

#include <string.h>

int
ctl_parse_usage (const char *usage, const char *summary,
                 const GOptionEntry *entries, int *argc, char ***argv)
{
  const char *sub = strchr (usage, ' ');
  const char *params = sub ? strchr (sub + 1, ' ') : NULL;
  g_autofree char *verb
      = params ? g_strndup (usage, (gsize)(params - usage)) : g_strdup (usage);

  return ctl_parse_options (verb, params ? params + 1 : "", summary, entries,
                            argc, argv);
}
