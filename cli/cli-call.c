/* The call-then-print-JSON step that most droverctl verbs share. */
#include "droverctl.h"

int
ctl_call_json (Ctl *ctl, guint method, const ProtobufCMessage *request,
               gboolean json, ProtobufCMessage **reply)
{
  g_autoptr (GError) error = NULL;

  *reply = ctl_call (ctl, method, request, 0, &error);
  if (*reply == NULL)
    return ctl_fail (error);
  if (!json)
    return -1;
  ctl_print_message_json (*reply);
  return CTL_EXIT_OK;
}
