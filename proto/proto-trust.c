/* ProtoTrust: who a peer is, from the certificate it presented.
 *
 * TLS (gRPC's, or GnuTLS in the migration channel) has already checked
 * that the certificate chains to the cluster's CA. Here the same chain is
 * checked again with GnuTLS together with the revocation list, so that a
 * CRL that arrives with SIGHUP takes effect on the next call, and the
 * subject is read: O is the role, CN the name. */
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "proto-private.h"

/* More CA certificates or revoked entries than this in a trust file is
 * a mistake, not a cluster. */
#define PROTO_TRUST_MAX_CERTS 64
#define PROTO_TRUST_MAX_CRLS 64
/* Subject fields longer than this are refused (names are 1-63). */
#define PROTO_TRUST_MAX_FIELD 256

struct _ProtoTrust
{
  gint refs;
  gnutls_x509_crt_t *cas;
  unsigned int n_cas;
  gnutls_x509_crl_t *crls;
  unsigned int n_crls;
};

static const struct
{
  ProtoRole role;
  const char *name;
} roles[] = {
  { PROTO_ROLE_HOST, "host" },
  { PROTO_ROLE_SCHEDULER, "scheduler" },
  { PROTO_ROLE_OPERATOR, "operator" },
  { PROTO_ROLE_VIEWER, "viewer" },
};

const char *
proto_role_to_string (ProtoRole role)
{
  for (gsize i = 0; i < G_N_ELEMENTS (roles); i++)
    if (roles[i].role == role)
      return roles[i].name;
  return role == PROTO_ROLES_ALL ? "any" : "none";
}

ProtoRole
proto_role_from_string (const char *name)
{
  for (gsize i = 0; name != NULL && i < G_N_ELEMENTS (roles); i++)
    if (strcmp (roles[i].name, name) == 0)
      return roles[i].role;
  return PROTO_ROLE_NONE;
}

char *
proto_roles_describe (guint roles_mask)
{
  GString *s = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (roles); i++)
    if (roles_mask & roles[i].role)
      g_string_append_printf (s, "%s%s", s->len ? ", " : "", roles[i].name);
  if (s->len == 0)
    g_string_append (s, "none");
  return g_string_free (s, FALSE);
}

static void
proto_trust_free (ProtoTrust *trust)
{
  for (unsigned int i = 0; i < trust->n_cas; i++)
    gnutls_x509_crt_deinit (trust->cas[i]);
  for (unsigned int i = 0; i < trust->n_crls; i++)
    gnutls_x509_crl_deinit (trust->crls[i]);
  gnutls_free (trust->cas);
  gnutls_free (trust->crls);
  g_free (trust);
}

ProtoTrust *
proto_trust_new (const char *ca_pem, const char *crl_pem, GError **error)
{
  ProtoTrust *trust = g_new0 (ProtoTrust, 1);
  gnutls_datum_t d;
  int rc;

  trust->refs = 1;
  d.data = (unsigned char *)ca_pem;
  d.size = ca_pem ? strlen (ca_pem) : 0;
  rc = gnutls_x509_crt_list_import2 (&trust->cas, &trust->n_cas, &d,
                                     GNUTLS_X509_FMT_PEM, 0);
  if (rc < 0 || trust->n_cas == 0 || trust->n_cas > PROTO_TRUST_MAX_CERTS)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "ca.pem: %s",
                   rc < 0 ? gnutls_strerror (rc) : "no usable certificate");
      proto_trust_free (trust);
      return NULL;
    }
  if (crl_pem != NULL && crl_pem[0] != '\0')
    {
      d.data = (unsigned char *)crl_pem;
      d.size = strlen (crl_pem);
      rc = gnutls_x509_crl_list_import2 (&trust->crls, &trust->n_crls, &d,
                                         GNUTLS_X509_FMT_PEM, 0);
      if (rc < 0 || trust->n_crls > PROTO_TRUST_MAX_CRLS)
        {
          g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                       "crl.pem: %s",
                       rc < 0 ? gnutls_strerror (rc) : "too many lists");
          proto_trust_free (trust);
          return NULL;
        }
      /* A CRL counts only when the CA signed it. */
      for (unsigned int i = 0; i < trust->n_crls; i++)
        {
          gboolean signed_by_ca = FALSE;

          for (unsigned int j = 0; j < trust->n_cas && !signed_by_ca; j++)
            signed_by_ca
                = gnutls_x509_crl_check_issuer (trust->crls[i], trust->cas[j])
                  == 1;
          if (!signed_by_ca)
            {
              g_set_error_literal (error, PROTO_ERROR,
                                   PROTO_STATUS_INVALID_ARGUMENT,
                                   "crl.pem: a revocation list is not "
                                   "issued by the CA in ca.pem");
              proto_trust_free (trust);
              return NULL;
            }
        }
    }
  return trust;
}

ProtoTrust *
proto_trust_ref (ProtoTrust *trust)
{
  g_atomic_int_inc (&trust->refs);
  return trust;
}

void
proto_trust_unref (ProtoTrust *trust)
{
  if (trust != NULL && g_atomic_int_dec_and_test (&trust->refs))
    proto_trust_free (trust);
}

/* The first value of OID in CRT's subject, or NULL with ERROR. A subject
 * with two values of it is refused: which one names the peer would be a
 * guess. */
static char *
subject_field (gnutls_x509_crt_t crt, const char *oid, const char *what,
               GError **error)
{
  char buf[PROTO_TRUST_MAX_FIELD + 1];
  size_t size = sizeof buf;
  int rc = gnutls_x509_crt_get_dn_by_oid (crt, oid, 0, 0, buf, &size);

  if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_UNAUTHENTICATED,
                   "certificate subject has no %s", what);
      return NULL;
    }
  if (rc < 0 || size == 0 || memchr (buf, '\0', size) != NULL)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_UNAUTHENTICATED,
                   "certificate subject %s is unreadable or too long", what);
      return NULL;
    }
  size = 0;
  if (gnutls_x509_crt_get_dn_by_oid (crt, oid, 1, 0, NULL, &size)
      != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_UNAUTHENTICATED,
                   "certificate subject has more than one %s", what);
      return NULL;
    }
  return g_strdup (buf);
}

gboolean
proto_trust_identify (ProtoTrust *trust, const char *pem, gsize len,
                      ProtoRole *role, char **name, GError **error)
{
  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t d = { (unsigned char *)pem, (unsigned int)len };
  g_autofree char *o = NULL;
  g_autofree char *cn = NULL;
  unsigned int status = 0;
  gboolean ok = FALSE;
  int rc;

  if (pem == NULL || len == 0 || len > 64 * 1024)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_UNAUTHENTICATED,
                           "no client certificate");
      return FALSE;
    }
  if ((rc = gnutls_x509_crt_init (&crt)) < 0
      || (rc = gnutls_x509_crt_import (crt, &d, GNUTLS_X509_FMT_PEM)) < 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_UNAUTHENTICATED,
                   "unreadable certificate: %s", gnutls_strerror (rc));
      goto out;
    }
  rc = gnutls_x509_crt_list_verify (&crt, 1, trust->cas, trust->n_cas,
                                    trust->crls, trust->n_crls, 0, &status);
  if (rc < 0 || status != 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_UNAUTHENTICATED, "%s",
                   (status & GNUTLS_CERT_REVOKED)
                       ? "certificate revoked"
                       : "certificate not trusted by the cluster CA");
      goto out;
    }
  o = subject_field (crt, GNUTLS_OID_X520_ORGANIZATION_NAME,
                     "O (organization: the role)", error);
  if (o == NULL)
    goto out;
  cn = subject_field (crt, GNUTLS_OID_X520_COMMON_NAME, "CN (common name)",
                      error);
  if (cn == NULL)
    goto out;
  *role = proto_role_from_string (o);
  if (*role == PROTO_ROLE_NONE)
    {
      g_autofree char *esc = g_strescape (o, NULL);

      g_set_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED,
                   "certificate role O=%s is none of host, scheduler, "
                   "operator, viewer",
                   esc);
      goto out;
    }
  *name = g_steal_pointer (&cn);
  ok = TRUE;

out:
  if (crt != NULL)
    gnutls_x509_crt_deinit (crt);
  return ok;
}
