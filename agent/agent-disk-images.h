/* Disk images (issue 13): bootable qcow2 or raw images in the image
 * directory's "disks" folder (IMAGE_DIR/disks/NAME.FORMAT), imported in
 * pieces (ImportImage), listed with the host's info and by ListImages,
 * deleted by DeleteImage unless a VM's disk is an overlay on one. VMs
 * created with an image get a qcow2 overlay of it as their disk.
 *
 * An upload goes to IMAGE_DIR/disks/.NAME.HOST.ID.import (HOST: this
 * agent's name, so that hosts sharing one image directory never write
 * each other's uploads; ID: 16 hex digits the first piece's reply gives
 * and every later piece names, so that two uploaders never write one
 * file: a new upload of NAME supersedes an older one) and becomes
 * NAME.FORMAT only once its content passed the checks, by link () (never
 * replacing an image) and unlink (): an agent killed in between leaves
 * at most its own upload file, which its next start removes
 * (agent_disk_images_reclaim).
 */
#pragma once

#include "agent-private.h"

G_BEGIN_DECLS

/* ImportImage, ListImages, DeleteImage (AgentOpFunc, worker threads). */
ProtobufCMessage *agent_disk_images_import (Agent *agent,
                                            const AgentCaller *caller,
                                            const ProtobufCMessage *request,
                                            GError **error);
ProtobufCMessage *agent_disk_images_list (Agent *agent,
                                          const AgentCaller *caller,
                                          const ProtobufCMessage *request,
                                          GError **error);
ProtobufCMessage *agent_disk_images_delete (Agent *agent,
                                            const AgentCaller *caller,
                                            const ProtobufCMessage *request,
                                            GError **error);

/* The images of this host (at most PROTO_HOST_MAX_IMAGES, by name), for
 * its HostInfo; *N their count. Never fails: an unreadable directory is
 * no images. */
Drover__V1__Image **agent_disk_images_collect (Agent *agent, gsize *n);

/* The path and format of image NAME, or FALSE with AGENT_ERROR_NOT_FOUND
 * (AGENT_ERROR_INVALID for a bad name). */
gboolean agent_disk_images_find (Agent *agent, const char *name, char **path,
                                 char **format, GError **error);

/* Makes the disk of a VM created from image NAME: a qcow2 overlay at
 * DISK_PATH on the image (its absolute path, its format named), as large
 * as the image or SIZE bytes if that is larger; *VIRTUAL_SIZE (nullable)
 * gets the size made. Nothing is left at DISK_PATH on failure. Also
 * where an incoming migration's disk goes: the destination must have the
 * image (AGENT_ERROR_NOT_FOUND naming it and the host otherwise). */
gboolean agent_disk_images_overlay (Agent *agent, const char *name,
                                    const char *disk_path, guint64 size,
                                    guint64 *virtual_size, GError **error);

/* Removes the uploads an earlier run of this agent left and, with CONN
 * (NULL: skipped), the cloud-init seeds (DATA/disks/VM.seed.iso) of VMs
 * libvirt does not know here (a create cut short). */
void agent_disk_images_reclaim (Agent *agent, virConnectPtr conn);

/* --- cloud-init (agent-cloud-init.c) ----------------------------------- */

/* Where the NoCloud seed of the VM with disk DISK_PATH (DATA/disks/VM.qcow2)
 * goes: DATA/disks/VM.seed.iso. */
char *agent_cloud_init_seed_path (const char *disk_path);
/* Writes the seed of SPEC (its cloud_init_user_data, meta-data naming the
 * VM) at SEED_PATH: an ISO 9660 volume labelled "cidata" holding
 * user-data and meta-data (genisoimage), readable by QEMU. Nothing is
 * left at SEED_PATH on failure. */
gboolean agent_cloud_init_seed_make (Agent *agent,
                                     const Drover__V1__VmSpec *spec,
                                     const char *seed_path, GError **error);

G_END_DECLS
