/* libdrover-proto: PEM material for mutual TLS. */
#include <string.h>

#include "proto-private.h"

static char *
proto_tls_read (const char *dir, const char *name, GError **error)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  char *data = NULL;

  /* GLib's message names the file ("Failed to open file “…/ca.pem”"). */
  if (!g_file_get_contents (path, &data, NULL, error))
    return NULL;
  return data;
}

ProtoTls *
proto_tls_load (const char *dir, GError **error)
{
  g_autoptr (ProtoTls) tls = g_new0 (ProtoTls, 1);
  g_autofree char *crl = NULL;

  tls->ca_pem = proto_tls_read (dir, "ca.pem", error);
  if (!tls->ca_pem)
    return NULL;
  tls->cert_pem = proto_tls_read (dir, "cert.pem", error);
  if (!tls->cert_pem)
    return NULL;
  tls->key_pem = proto_tls_read (dir, "key.pem", error);
  if (!tls->key_pem)
    return NULL;
  crl = g_build_filename (dir, "crl.pem", NULL);
  if (g_file_test (crl, G_FILE_TEST_EXISTS))
    {
      tls->crl_pem = proto_tls_read (dir, "crl.pem", error);
      if (!tls->crl_pem)
        return NULL;
    }
  return g_steal_pointer (&tls);
}

ProtoTls *
proto_tls_copy (const ProtoTls *tls)
{
  ProtoTls *copy = g_new0 (ProtoTls, 1);

  copy->ca_pem = g_strdup (tls->ca_pem);
  copy->cert_pem = g_strdup (tls->cert_pem);
  copy->key_pem = g_strdup (tls->key_pem);
  copy->crl_pem = g_strdup (tls->crl_pem);
  return copy;
}

void
proto_tls_free (ProtoTls *tls)
{
  if (!tls)
    return;
  g_free (tls->ca_pem);
  g_free (tls->cert_pem);
  g_free (tls->crl_pem);
  if (tls->key_pem)
    memset (tls->key_pem, 0, strlen (tls->key_pem));
  g_free (tls->key_pem);
  g_free (tls);
}
