/* cloud/outscale/auth.c: where the OUTSCALE access key, secret key, region, endpoints and client
 * certificate come from. See osc_auth.h and protocols.md 4.1.
 *
 * Everything is read once, synchronously, at start-up (the environment and at most three small
 * local files), so this file has no loop and no callbacks. The secret key and the client key
 * pass through here: they are wiped when freed, and no message ever quotes a value read from
 * the environment or the config file (only variable names, the file's path and the profile's
 * name); an endpoint is quoted, since cloud__endpoint_check refuses user information before
 * it would ever quote one. */
#include "osc_auth.h"

#include "../rest_common.h"

#include "cg_buf.h"
#include "cg_log.h"
#include "cg_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_LIMIT    ((size_t)1024 * 1024)
#define PEM_LIMIT       ((size_t)64 * 1024)
#define MAX_ENDPOINT    2048
#define ACCESS_KEY_LEN  20
#define SECRET_KEY_LEN  40
#define MAX_REGION      32
#define MAX_SHOWN       96 /* a path or a profile name quoted in a message */
#define DEFAULT_PROFILE "default"
#define DEFAULT_FILE    "/.osc/config.json"

#define NO_CREDENTIALS                                                                             \
    "no OUTSCALE credentials: set OSC_ACCESS_KEY and OSC_SECRET_KEY, or a profile in "             \
    "~/.osc/config.json"

/* ---- the config file -------------------------------------------------------------------- */

void osc_profile_cleanup(struct osc_profile *p)
{
    if (p == NULL) {
        return;
    }
    free(p->access_key);
    cg_secret_free(p->secret_key);
    free(p->region);
    free(p->endpoint_api);
    free(p->endpoint_eim);
    free(p->client_cert);
    free(p->client_key);
    memset(p, 0, sizeof(*p));
}

/* Where a message says the profile is: "profile 'x' of '/p'". */
static void where(char *dst, size_t cap, const char *profile, const char *path)
{
    char p[MAX_SHOWN];
    char f[MAX_SHOWN];
    cg_printable_n(p, sizeof(p), profile, strlen(profile));
    cg_printable_n(f, sizeof(f), path, strlen(path));
    snprintf(dst, cap, "profile '%s' of '%s'", p, f);
}

/* A string member: *dst is a copy, or NULL when the member is absent, null or "". */
static int member(json_t *obj, const char *key, char **dst, const char *at, struct cg_err *err)
{
    json_t *v = json_object_get(obj, key);
    *dst = NULL;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return cg_err_set(err, CG_EINVAL, "%s: '%s' is not a string", at, key);
    }
    if (json_string_length(v) == 0) {
        return 0;
    }
    if ((*dst = strdup(json_string_value(v))) == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    return 0;
}

int osc_profile_parse(struct osc_profile *out, const char *json, size_t len, const char *profile,
                      const char *path, struct cg_err *err)
{
    if (out == NULL) {
        return cg_err_set(err, CG_EINVAL, "osc_profile_parse: missing argument");
    }
    memset(out, 0, sizeof(*out));
    if (profile == NULL || profile[0] == '\0') {
        profile = DEFAULT_PROFILE;
    }
    if (path == NULL) {
        path = "config";
    }
    char at[2 * MAX_SHOWN + 32];
    char file[MAX_SHOWN];
    where(at, sizeof(at), profile, path);
    cg_printable_n(file, sizeof(file), path, strlen(path));

    struct osc_profile p = {0};
    json_error_t jerr;
    /* Duplicate keys are refused: two access_key members would leave it to the parser which
     * key is used. The parser's own text is dropped: it may quote the secret. */
    json_t *doc =
        json_loadb(json != NULL ? json : "", json != NULL ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (doc == NULL) {
        if (json_error_code(&jerr) == json_error_duplicate_key) {
            rc = cg_err_set(err, CG_EINVAL, "cannot parse '%s': a key appears twice (line %d)",
                            file, jerr.line);
        } else {
            rc =
                cg_err_set(err, CG_EINVAL, "cannot parse '%s': not valid JSON (line %d, column %d)",
                           file, jerr.line, jerr.column);
        }
        goto out;
    }
    if (!json_is_object(doc)) {
        rc = cg_err_set(err, CG_EINVAL, "cannot parse '%s': not a JSON object of profiles", file);
        goto out;
    }
    json_t *prof = json_object_get(doc, profile);
    if (prof == NULL) {
        rc = cg_err_set(err, CG_EINVAL, "%s: no such profile (set OSC_PROFILE to another one)", at);
        goto out;
    }
    if (!json_is_object(prof)) {
        rc = cg_err_set(err, CG_EINVAL, "%s: not a JSON object", at);
        goto out;
    }
    json_t *eps = json_object_get(prof, "endpoints");
    if (eps != NULL && !json_is_null(eps) && !json_is_object(eps)) {
        rc = cg_err_set(err, CG_EINVAL, "%s: 'endpoints' is not an object", at);
        goto out;
    }
    char *sslkey = NULL;
    if ((rc = member(prof, "access_key", &p.access_key, at, err)) < 0 ||
        (rc = member(prof, "secret_key", &p.secret_key, at, err)) < 0 ||
        (rc = member(prof, "region", &p.region, at, err)) < 0 ||
        (rc = member(prof, "x509_client_cert", &p.client_cert, at, err)) < 0 ||
        (rc = member(prof, "x509_client_sslkey", &p.client_key, at, err)) < 0 ||
        (rc = member(prof, "x509_client_key", &sslkey, at, err)) < 0 ||
        (rc = member(eps, "api", &p.endpoint_api, at, err)) < 0 ||
        (rc = member(eps, "eim", &p.endpoint_eim, at, err)) < 0) {
        free(sslkey);
        goto out;
    }
    if (p.client_key == NULL) {
        p.client_key = sslkey; /* osc-config-spec's name for osc-cli's x509_client_sslkey */
    } else {
        free(sslkey);
    }
    if (p.access_key == NULL || p.secret_key == NULL) {
        rc = cg_err_set(err, CG_EINVAL, "%s: '%s' is missing", at,
                        p.access_key == NULL ? "access_key" : "secret_key");
        goto out;
    }
    *out = p;
    memset(&p, 0, sizeof(p));
out:
    json_decref(doc);
    osc_profile_cleanup(&p);
    return rc;
}

/* ---- checks ----------------------------------------------------------------------------- */

static int access_key_ok(const char *s)
{
    if (strlen(s) != ACCESS_KEY_LEN) {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
            return 0;
        }
    }
    return 1;
}

static int secret_key_ok(const char *s)
{
    if (strlen(s) != SECRET_KEY_LEN) {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int region_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_REGION) {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            return 0;
        }
    }
    return 1;
}

/* The key pair, checked before any call: four bad signatures in a row lock the key, so a key
 * that cannot be right is refused here rather than sent. */
static int check_pair(const char *ak, const char *sk, const char *ak_name, const char *sk_name,
                      struct cg_err *err)
{
    if (!access_key_ok(ak)) {
        return cg_err_set(err, CG_EINVAL,
                          "%s is not an OUTSCALE access key (20 characters, A-Z and 0-9)", ak_name);
    }
    if (!secret_key_ok(sk)) {
        return cg_err_set(err, CG_EINVAL,
                          "%s is not an OUTSCALE secret key (40 printable characters)", sk_name);
    }
    return 0;
}

/* An endpoint into its normal form (see osc_auth.h) after checking it; *out is new. */
static int endpoint_norm(const char *value, const char *what, int api, char **out,
                         struct cg_err *err)
{
    *out = NULL;
    char *v = strstr(value, "://") == NULL ? cg_strfmt("https://%s", value) : strdup(value);
    if (v == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    /* plain http is the client's decision (osc_api_config.allow_insecure_http): only the
     * shape is checked here */
    int rc = cloud__endpoint_check(what, v, MAX_ENDPOINT, 1, err);
    if (rc < 0) {
        free(v);
        return rc;
    }
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/') {
        v[--n] = '\0';
    }
    const char *host = strstr(v, "://") + 3;
    if (api && strchr(host, '/') == NULL) {
        char *w = cg_strfmt("%s/api/v1", v);
        free(v);
        if (w == NULL) {
            return cg_err_set(err, CG_ENOMEM, "out of memory");
        }
        v = w;
    }
    *out = v;
    return 0;
}

/* ---- loading ---------------------------------------------------------------------------- */

struct loader {
    const char *(*get)(const char *name);
    const char *home;
};

static const char *sys_getenv(const char *name)
{
    return getenv(name);
}

/* A variable's value, NULL when unset or empty. */
static const char *var(const struct loader *l, const char *name)
{
    const char *v = l->get(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Reads a PEM file named by `what` (a variable or a profile member). */
static int read_pem(const char *path, const char *what, char **out, size_t *len, struct cg_err *err)
{
    char *buf = NULL;
    size_t n = 0;
    int rc = cg_file_read(path, PEM_LIMIT, &buf, &n, err);
    if (rc < 0) {
        if (rc == CG_ETOOBIG) {
            rc = CG_EINVAL;
            if (err != NULL) {
                err->code = rc;
            }
        } else if (rc != CG_ENOMEM) {
            rc = CG_EIO;
            if (err != NULL) {
                err->code = rc;
            }
        }
        cg_err_wrap(err, "%s", what);
        return rc;
    }
    if (n != strlen(buf) || strstr(buf, "-----BEGIN ") == NULL) {
        char shown[MAX_SHOWN];
        cg_printable_n(shown, sizeof(shown), path, strlen(path));
        cg_secret_free(buf);
        return cg_err_set(err, CG_EINVAL, "%s: '%s' is not a PEM file", what, shown);
    }
    *out = buf;
    if (len != NULL) {
        *len = n;
    }
    return 0;
}

/* The client certificate pair: the environment's, else the profile's (paths relative to the
 * config file's directory). */
static int load_client_cert(struct osc_credentials *c, const struct loader *l,
                            const struct osc_profile *p, const char *config_path, const char *at,
                            struct cg_err *err)
{
    const char *cert = var(l, "OSC_X509_CLIENT_CERT");
    const char *key = var(l, "OSC_X509_CLIENT_KEY");
    char cert_what[300];
    char key_what[300];
    char *cert_path = NULL;
    char *key_path = NULL;
    int rc = 0;
    if (cert != NULL || key != NULL) {
        if (cert == NULL || key == NULL) {
            return cg_err_set(err, CG_EINVAL, "%s is set but %s is not: set both or neither",
                              cert != NULL ? "OSC_X509_CLIENT_CERT" : "OSC_X509_CLIENT_KEY",
                              cert != NULL ? "OSC_X509_CLIENT_KEY" : "OSC_X509_CLIENT_CERT");
        }
        snprintf(cert_what, sizeof(cert_what), "OSC_X509_CLIENT_CERT");
        snprintf(key_what, sizeof(key_what), "OSC_X509_CLIENT_KEY");
        cert_path = strdup(cert);
        key_path = strdup(key);
    } else if (p != NULL && (p->client_cert != NULL || p->client_key != NULL)) {
        if (p->client_cert == NULL || p->client_key == NULL) {
            return cg_err_set(err, CG_EINVAL,
                              "%s: '%s' is set but '%s' is not: set both or neither", at,
                              p->client_cert != NULL ? "x509_client_cert" : "x509_client_sslkey",
                              p->client_cert != NULL ? "x509_client_sslkey" : "x509_client_cert");
        }
        snprintf(cert_what, sizeof(cert_what), "%s: x509_client_cert", at);
        snprintf(key_what, sizeof(key_what), "%s: x509_client_sslkey", at);
        char *dir = cg_dirname(config_path);
        if (dir != NULL) {
            cert_path = cg_path_join(dir, p->client_cert);
            key_path = cg_path_join(dir, p->client_key);
        }
        free(dir);
    } else {
        return 0;
    }
    if (cert_path == NULL || key_path == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
    } else if ((rc = read_pem(cert_path, cert_what, &c->client_cert_pem, NULL, err)) == 0) {
        rc = read_pem(key_path, key_what, &c->client_key_pem, NULL, err);
    }
    free(cert_path);
    free(key_path);
    return rc;
}

/* Reads and parses the profile; *found is 0 when there is no config file at the default path
 * (no credentials at all, rather than an error). */
static int load_profile(struct osc_profile *p, const struct loader *l, char **path_out,
                        char **profile_out, int *found, struct cg_err *err)
{
    const char *explicit = var(l, "OSC_CONFIG_FILE");
    const char *profile = var(l, "OSC_PROFILE");
    *found = 0;
    if (profile == NULL) {
        profile = DEFAULT_PROFILE;
    }
    char *path = NULL;
    if (explicit != NULL) {
        path = strdup(explicit);
    } else if (l->home != NULL && l->home[0] != '\0') {
        path = cg_strfmt("%s%s", l->home, DEFAULT_FILE);
    } else {
        return 0; /* no home: no default file */
    }
    if (path == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    char *text = NULL;
    size_t len = 0;
    int rc = cg_file_read(path, CONFIG_LIMIT, &text, &len, err);
    if (rc == CG_ENOTFOUND && explicit == NULL) {
        free(path);
        if (err != NULL) {
            cg_err_clear(err);
        }
        return 0;
    }
    if (rc < 0) {
        char shown[MAX_SHOWN];
        cg_printable_n(shown, sizeof(shown), path, strlen(path));
        if (rc == CG_ETOOBIG) {
            rc = cg_err_set(err, CG_EINVAL, "cannot read '%s': larger than 1 MiB", shown);
        } else if (rc != CG_ENOMEM) {
            rc = CG_EIO;
            if (err != NULL) {
                err->code = rc;
            }
        }
        free(path);
        return rc;
    }
    *found = 1;
    rc = osc_profile_parse(p, text, len, profile, path, err);
    cg_secret_free(text);
    if (rc < 0) {
        free(path);
        return rc;
    }
    *path_out = path;
    if ((*profile_out = strdup(profile)) == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    return 0;
}

void osc_credentials_cleanup(struct osc_credentials *c)
{
    if (c == NULL) {
        return;
    }
    free(c->access_key);
    cg_secret_free(c->secret_key);
    free(c->region);
    free(c->endpoint_api);
    free(c->endpoint_eim);
    free(c->client_cert_pem);
    cg_secret_free(c->client_key_pem);
    free(c->source);
    memset(c, 0, sizeof(*c));
}

int osc_credentials_load(struct osc_credentials *out, const struct osc_auth_env *env,
                         const char *region_hint, struct cg_err *err)
{
    if (out == NULL) {
        return cg_err_set(err, CG_EINVAL, "osc_credentials_load: missing argument");
    }
    memset(out, 0, sizeof(*out));
    struct loader l = {.get = env != NULL && env->getenv != NULL ? env->getenv : sys_getenv};
    l.home = env != NULL && env->home != NULL ? env->home : l.get("HOME");

    struct osc_credentials c = {0};
    struct osc_profile p = {0};
    char *path = NULL;
    char *profile = NULL;
    char at[2 * MAX_SHOWN + 32] = "";
    int from_profile = 0;
    int rc = 0;

    /* the key pair */
    const char *ak = var(&l, "OSC_ACCESS_KEY");
    const char *sk = var(&l, "OSC_SECRET_KEY");
    if (ak != NULL || sk != NULL) {
        if (ak == NULL || sk == NULL) {
            rc = cg_err_set(err, CG_EINVAL,
                            "%s is set but %s is not: set both, or neither to use a profile of "
                            "~/.osc/config.json",
                            ak != NULL ? "OSC_ACCESS_KEY" : "OSC_SECRET_KEY",
                            ak != NULL ? "OSC_SECRET_KEY" : "OSC_ACCESS_KEY");
            goto out;
        }
        if ((rc = check_pair(ak, sk, "OSC_ACCESS_KEY", "OSC_SECRET_KEY", err)) < 0) {
            goto out;
        }
        c.access_key = strdup(ak);
        c.secret_key = strdup(sk);
        c.source = strdup("environment");
    } else {
        int found = 0;
        if ((rc = load_profile(&p, &l, &path, &profile, &found, err)) < 0) {
            goto out;
        }
        if (!found) {
            rc = cg_err_set(err, CG_EAUTH, NO_CREDENTIALS);
            goto out;
        }
        from_profile = 1;
        where(at, sizeof(at), profile, path);
        char ak_name[sizeof(at) + 16];
        char sk_name[sizeof(at) + 16];
        snprintf(ak_name, sizeof(ak_name), "access_key of %s", at);
        snprintf(sk_name, sizeof(sk_name), "secret_key of %s", at);
        if ((rc = check_pair(p.access_key, p.secret_key, ak_name, sk_name, err)) < 0) {
            goto out;
        }
        c.access_key = p.access_key;
        c.secret_key = p.secret_key;
        p.access_key = NULL;
        p.secret_key = NULL;
        char shown_profile[MAX_SHOWN];
        char shown_path[MAX_SHOWN];
        cg_printable_n(shown_profile, sizeof(shown_profile), profile, strlen(profile));
        cg_printable_n(shown_path, sizeof(shown_path), path, strlen(path));
        c.source = cg_strfmt("profile '%s' of %s", shown_profile, shown_path);
    }
    if (c.access_key == NULL || c.secret_key == NULL || c.source == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }

    /* the region */
    const char *region = var(&l, "OSC_REGION");
    const char *region_from = "OSC_REGION";
    char region_what[sizeof(at) + 16];
    if (region == NULL && from_profile && p.region != NULL) {
        region = p.region;
        snprintf(region_what, sizeof(region_what), "region of %s", at);
        region_from = region_what;
    }
    if (region == NULL && region_hint != NULL && region_hint[0] != '\0') {
        region = region_hint;
        region_from = "the cluster's region";
    }
    if (region == NULL) {
        rc = cg_err_set(err, CG_EINVAL,
                        "no OUTSCALE region: set OSC_REGION (eu-west-2, us-east-2, ...)");
        goto out;
    }
    if (!region_ok(region)) {
        rc = cg_err_set(err, CG_EINVAL,
                        "%s is not an OUTSCALE region name (1 to 32 of a-z, 0-9 and '-')",
                        region_from);
        goto out;
    }
    if ((c.region = strdup(region)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }

    /* the endpoints */
    char what[sizeof(at) + 32];
    const char *api = var(&l, "OSC_ENDPOINT_API");
    snprintf(what, sizeof(what), "OSC_ENDPOINT_API");
    if (api == NULL && from_profile && p.endpoint_api != NULL) {
        api = p.endpoint_api;
        snprintf(what, sizeof(what), "endpoints.api of %s", at);
    }
    if (api != NULL) {
        rc = endpoint_norm(api, what, 1, &c.endpoint_api, err);
    } else if ((c.endpoint_api = cg_strfmt("https://api.%s.outscale.com/api/v1", c.region)) ==
               NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    if (rc < 0) {
        goto out;
    }
    const char *eim = var(&l, "CLOUDGRANT_OSC_ENDPOINT_EIM");
    snprintf(what, sizeof(what), "CLOUDGRANT_OSC_ENDPOINT_EIM");
    if (eim == NULL && from_profile && p.endpoint_eim != NULL) {
        eim = p.endpoint_eim;
        snprintf(what, sizeof(what), "endpoints.eim of %s", at);
    }
    if (eim != NULL) {
        rc = endpoint_norm(eim, what, 0, &c.endpoint_eim, err);
    } else if ((c.endpoint_eim = cg_strfmt("https://eim.%s.outscale.com", c.region)) == NULL) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    if (rc < 0) {
        goto out;
    }

    /* the client certificate */
    if ((rc = load_client_cert(&c, &l, from_profile ? &p : NULL, path, at, err)) < 0) {
        goto out;
    }

    CG_LOG(CG_LOG_DEBUG, "osc", "OUTSCALE credentials from %s, region %s, API %s%s", c.source,
           c.region, c.endpoint_api, c.client_cert_pem != NULL ? ", client certificate" : "");
    *out = c;
    memset(&c, 0, sizeof(c));
out:
    osc_credentials_cleanup(&c);
    osc_profile_cleanup(&p);
    free(path);
    free(profile);
    return rc;
}
