/* Storage internals shared by the files of libdrover-storage. */
#pragma once

#include "stor.h"

#include <json-glib/json-glib.h>

/* proto_name_validate as a STOR_ERROR_INVALID_NAME error: the check
 * that keeps every path built from a name inside its directory. */
gboolean stor_name_check (const char *what, const char *name, GError **error);

/* Member NAME of OBJ when it is a string; NULL when missing or of
 * another type (qemu-img's JSON, repository files: never trusted). */
const char *stor_json_string (JsonObject *obj, const char *name);

/* fsync of PATH, a directory when DIR; a full disk (ENOSPC, EDQUOT) is
 * STOR_ERROR_NO_SPACE. */
gboolean stor_fsync_path (const char *path, gboolean dir, GError **error);

/* Runs ARGV to the end: argv[0] found on PATH, no shell (paths are never
 * interpreted); its stdout in *OUT when OUT is given, else discarded.
 * The error names WHAT and carries the tool's own message; a tool that
 * ran out of space fails with STOR_ERROR_NO_SPACE. */
gboolean stor_run_tool (const char *const *argv, const char *what, char **out,
                        GError **error);

/* Makes a new image at PATH with the qemu-img command ARGV. Refuses an
 * existing PATH (STOR_ERROR_EXISTS, calling it NOUN: "disk image") and a
 * filesystem with less than NEED plus STOR_MIN_FREE_SPACE bytes available
 * (stor_space_check, naming WHAT: "a disk image"); on failure nothing is
 * left at PATH. */
gboolean stor_image_make (const char *path, const char *noun, const char *what,
                          guint64 need, const char *const *argv,
                          GError **error);
