/* Images (issue 13): bootable disk images in the hosts' image
 * directories. Agents hold them and report which they have
 * (HostInfo.images); the scheduler relays uploads, listings and deletes
 * to one host at a time (droverctl loops over the hosts), refuses to
 * delete an image a VM's spec names, and placement only picks hosts that
 * have a VM's image. Nothing about images is stored: a VM's image is in
 * its spec (VmSpec.image), where each image is comes from the reports.
 */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

/* TRUE if HOST's last report lists image NAME. */
gboolean sched_host_has_image (const SchedHost *host, const char *name);

/* Checks the images of INFO, a host's report: at most
 * PROTO_HOST_MAX_IMAGES, valid names and formats, no name twice.
 * SCHED_ERROR_INVALID saying what is wrong. */
gboolean sched_host_images_check (const Drover__V1__HostInfo *info,
                                  GError **error);

/* The RPCs ImportImage, ListImages, DeleteImage (USER_DATA: the
 * SchedService). */
void sched_images_handle_import (ProtoServerCall *call,
                                 const ProtobufCMessage *request,
                                 gpointer user_data);
void sched_images_handle_list (ProtoServerCall *call,
                               const ProtobufCMessage *request,
                               gpointer user_data);
void sched_images_handle_delete (ProtoServerCall *call,
                                 const ProtobufCMessage *request,
                                 gpointer user_data);

G_END_DECLS
