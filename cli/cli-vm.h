/* Shared by the droverctl vm verbs (cli-vm*.c); the subcommand table is in
 * cli-vm.c. */
#pragma once

#include "droverctl.h"

/* Parses the options of the verb that USAGE ("vm SUB PARAMS") describes,
 * then its one VM name into *NAME. Returns -1 to go on, or the exit
 * code to return at once. */
int cli_vm_parse (const char *usage, const char *summary,
                  const GOptionEntry *entries, int argc, char **argv,
                  const char **name);

/* The --json output of a call that returns a VM: the VM, or null. */
int cli_vm_print_json (const Drover__V1__Vm *vm);

/* droverctl vm create (cli-vm-create.c). */
int cli_vm_create (Ctl *ctl, int argc, char **argv);
/* droverctl vm list and vm show (cli-vm-show.c). */
int cli_vm_list (Ctl *ctl, int argc, char **argv);
int cli_vm_show (Ctl *ctl, int argc, char **argv);
/* droverctl vm console (cli-vm-console.c). */
int cli_vm_console (Ctl *ctl, int argc, char **argv);
