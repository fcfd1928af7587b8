/* cloud/aws/creds.c: the AWS credential chain (environment, web identity, shared files,
 * container provider, IMDSv2) with a cache that refreshes five minutes before expiry.
 *
 * Everything runs on the cg_http loop. A lookup is a `fetch` that walks the sources in order;
 * the synchronous ones (environment, files) answer at once, the others submit requests and
 * continue from their done callbacks. Callers queue as waiters; whoever finishes a fetch (or the
 * zero-delay timer that serves the cache) answers all of them. The provider object outlives
 * its owner's aws_creds_provider_free while a request or timer still points at it: `busy`
 * counts those, and the last one releases it. */
#include "aws_creds.h"

#include "creds_int.h"

#include "cg_buf.h"
#include "cg_http.h"
#include "cg_log.h"
#include "cg_util.h"

#include <ctype.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFRESH_MARGIN_S 300 /* refresh when less than 5 minutes remain */
#define STALE_OK_S       60  /* a failed refresh still serves creds with a minute left */
#define FILE_LIMIT       (1024u * 1024u)
#define TOKEN_LIMIT      (64u * 1024u)
#define JSON_LIMIT       (64u * 1024u)
#define INI_MAX_SECTIONS 4096
#define INI_MAX_KEYS     1024

#define STS_TIMEOUT_MS       20000
#define STS_TOKEN_RETRIES    1 /* InvalidIdentityToken / ExpiredTokenException */
#define STS_IDP_RETRIES      2 /* IDPCommunicationError */
#define CONTAINER_HOST       "http://169.254.170.2"
#define CONTAINER_ATTEMPT_MS 2000
#define IMDS_DEFAULT         "http://169.254.169.254"
#define IMDS_DEFAULT_V6      "http://[fd00:ec2::254]"
#define IMDS_TOKEN_TTL       "21600"

/* ---- environment ------------------------------------------------------------------------- */

struct envsrc {
    const char *(*getenv)(const char *name);
    const char *home;
};

static const char *sys_getenv(const char *name)
{
    return getenv(name);
}

/* An empty variable counts as unset, as in botocore. */
static const char *env_get(const struct envsrc *e, const char *name)
{
    const char *v = e->getenv != NULL ? e->getenv(name) : sys_getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static int env_true(const struct envsrc *e, const char *name)
{
    const char *v = env_get(e, name);
    return v != NULL && strcasecmp(v, "true") == 0;
}

static const char *env_home(const struct envsrc *e)
{
    return e->home != NULL && e->home[0] != '\0' ? e->home : env_get(e, "HOME");
}

/* "~" and "~/x" are the home directory, as botocore's os.path.expanduser; NULL without one. */
static char *expand_home(const char *path, const char *home)
{
    if (path[0] != '~' || (path[1] != '\0' && path[1] != '/')) {
        return strdup(path);
    }
    if (home == NULL) {
        return NULL;
    }
    size_t n = strlen(home) + strlen(path) + 1;
    char *s = malloc(n);
    if (s != NULL) {
        snprintf(s, n, "%s%s", home, path + 1);
    }
    return s;
}

/* A copy of s[0..n) (stopping at a NUL) for a message: control bytes become '?', and a value
 * longer than cap allows is cut with "...". */
static void printable(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    size_t i = 0;
    for (; i < n && s[i] != '\0' && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    dst[o] = '\0';
    if (i < n && s[i] != '\0' && o >= 3) {
        memcpy(dst + o - 3, "...", 3);
    }
}

/* ---- INI ----------------------------------------------------------------------------------- */

static void section_cleanup(struct aws_ini_section *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->kv[i].key);
        cg_secret_free(s->kv[i].value);
    }
    free(s->kv);
    free(s->name);
}

void aws__ini_cleanup(struct aws_ini *ini)
{
    if (ini == NULL) {
        return;
    }
    for (size_t i = 0; i < ini->n; i++) {
        section_cleanup(&ini->s[i]);
    }
    free(ini->s);
    memset(ini, 0, sizeof(*ini));
}

const struct aws_ini_section *aws__ini_section(const struct aws_ini *ini, const char *name)
{
    for (size_t i = 0; i < ini->n; i++) {
        if (strcmp(ini->s[i].name, name) == 0) {
            return &ini->s[i];
        }
    }
    return NULL;
}

const char *aws__ini_get(const struct aws_ini_section *s, const char *key)
{
    if (s == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->kv[i].key, key) == 0) {
            return s->kv[i].value;
        }
    }
    return NULL;
}

/* "profile NAME" (NAME optionally quoted, as shlex reads it) names profile NAME. */
static int profile_header_is(const char *sec, const char *profile)
{
    if (strncmp(sec, "profile", 7) != 0 || (sec[7] != ' ' && sec[7] != '\t')) {
        return 0;
    }
    const char *p = sec + 7;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    size_t n = strlen(p);
    if (n >= 2 && (p[0] == '"' || p[0] == '\'') && p[n - 1] == p[0]) {
        p++;
        n -= 2;
    } else if (strpbrk(p, " \t") != NULL) {
        return 0; /* three words: botocore ignores the section */
    }
    return n == strlen(profile) && strncmp(p, profile, n) == 0;
}

const struct aws_ini_section *aws__ini_config_profile(const struct aws_ini *ini,
                                                      const char *profile)
{
    const struct aws_ini_section *found = NULL;
    /* the later of "[default]" and "[profile default]" wins, as botocore builds its map */
    for (size_t i = 0; i < ini->n; i++) {
        const char *nm = ini->s[i].name;
        if ((strcmp(profile, "default") == 0 && strcmp(nm, "default") == 0) ||
            profile_header_is(nm, profile)) {
            found = &ini->s[i];
        }
    }
    return found;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *dup_lower(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (d != NULL) {
        for (char *p = d; *p != '\0'; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
    }
    return d;
}

int aws__ini_parse(struct aws_ini *out, const char *buf, size_t len, const char *source,
                   struct cg_err *err)
{
    struct aws_ini ini = {0};
    size_t cur = SIZE_MAX;  /* index of the current section */
    size_t last = SIZE_MAX; /* index of the last key in it: continuation target */
    size_t last_indent = 0;
    unsigned lineno = 0;
    char what[80];
    int rc = 0;

    if (memchr(buf, '\0', len) != NULL) {
        return cg_err_set(err, CG_EINVAL, "%s: contains a NUL byte", source);
    }
    size_t pos = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        pos = 3;
    }
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl != NULL);
        lineno++;
        while (ll > 0 && (line[ll - 1] == '\r' || is_blank(line[ll - 1]))) {
            ll--;
        }
        size_t indent = 0;
        while (indent < ll && is_blank(line[indent])) {
            indent++;
        }
        const char *c = line + indent;
        size_t cl = ll - indent;
        if (cl == 0) {
            continue; /* blank lines do not end a continued value (configparser) */
        }
        if (c[0] == '#' || c[0] == ';') {
            last = SIZE_MAX; /* a comment does */
            continue;
        }
        if (cur != SIZE_MAX && last != SIZE_MAX && indent > last_indent) {
            struct aws_ini_kv *kv = &ini.s[cur].kv[last];
            size_t vl = strlen(kv->value);
            char *nv = malloc(vl + cl + 2);
            if (nv == NULL) {
                rc = cg_err_set(err, CG_ENOMEM, "out of memory");
                goto out;
            }
            memcpy(nv, kv->value, vl);
            nv[vl] = '\n';
            memcpy(nv + vl + 1, c, cl);
            nv[vl + 1 + cl] = '\0';
            cg_secret_free(kv->value);
            kv->value = nv;
            continue;
        }
        if (c[0] == '[') {
            const char *rb = NULL;
            for (size_t i = cl; i > 1; i--) {
                if (c[i - 1] == ']') {
                    rb = c + i - 1;
                    break;
                }
            }
            if (rb == NULL) {
                rc =
                    cg_err_set(err, CG_EINVAL, "%s:%u: section header without ']'", source, lineno);
                goto out;
            }
            const char *ns = c + 1;
            const char *ne = rb;
            while (ns < ne && is_blank(*ns)) {
                ns++;
            }
            while (ne > ns && is_blank(ne[-1])) {
                ne--;
            }
            if (ns == ne) {
                rc = cg_err_set(err, CG_EINVAL, "%s:%u: empty section name", source, lineno);
                goto out;
            }
            char *name = strndup(ns, (size_t)(ne - ns));
            if (name == NULL) {
                rc = cg_err_set(err, CG_ENOMEM, "out of memory");
                goto out;
            }
            if (aws__ini_section(&ini, name) != NULL) {
                printable(what, sizeof(what), name, strlen(name));
                free(name);
                rc = cg_err_set(err, CG_EINVAL, "%s:%u: section [%s] appears twice", source, lineno,
                                what);
                goto out;
            }
            if (ini.n == INI_MAX_SECTIONS) {
                free(name);
                rc = cg_err_set(err, CG_EINVAL, "%s:%u: more than %d sections", source, lineno,
                                INI_MAX_SECTIONS);
                goto out;
            }
            if (ini.n == ini.cap) {
                size_t ncap = ini.cap ? ini.cap * 2 : 8;
                struct aws_ini_section *ns2 = realloc(ini.s, ncap * sizeof(*ns2));
                if (ns2 == NULL) {
                    free(name);
                    rc = cg_err_set(err, CG_ENOMEM, "out of memory");
                    goto out;
                }
                ini.s = ns2;
                ini.cap = ncap;
            }
            ini.s[ini.n] = (struct aws_ini_section){.name = name};
            cur = ini.n++;
            last = SIZE_MAX;
            continue;
        }
        if (cur == SIZE_MAX) {
            rc = cg_err_set(err, CG_EINVAL, "%s:%u: key outside a [section]", source, lineno);
            goto out;
        }
        size_t d = 0; /* the buffer need not be NUL-terminated: no strcspn */
        while (d < cl && c[d] != '=' && c[d] != ':') {
            d++;
        }
        if (d == cl) {
            rc = cg_err_set(err, CG_EINVAL,
                            "%s:%u: expected '[section]', 'key = value' or a comment", source,
                            lineno);
            goto out;
        }
        size_t ke = d;
        while (ke > 0 && is_blank(c[ke - 1])) {
            ke--;
        }
        if (ke == 0) {
            rc = cg_err_set(err, CG_EINVAL, "%s:%u: empty key", source, lineno);
            goto out;
        }
        const char *v = c + d + 1;
        const char *ve = c + cl;
        while (v < ve && is_blank(*v)) {
            v++;
        }
        struct aws_ini_section *s = &ini.s[cur];
        char *key = dup_lower(c, ke);
        if (key == NULL) {
            rc = cg_err_set(err, CG_ENOMEM, "out of memory");
            goto out;
        }
        if (aws__ini_get(s, key) != NULL) {
            printable(what, sizeof(what), key, strlen(key));
            free(key);
            rc = cg_err_set(err, CG_EINVAL, "%s:%u: key '%s' appears twice in its section", source,
                            lineno, what);
            goto out;
        }
        if (s->n == INI_MAX_KEYS) {
            free(key);
            rc = cg_err_set(err, CG_EINVAL, "%s:%u: more than %d keys in a section", source, lineno,
                            INI_MAX_KEYS);
            goto out;
        }
        if (s->n == s->cap) {
            size_t ncap = s->cap ? s->cap * 2 : 8;
            struct aws_ini_kv *nkv = realloc(s->kv, ncap * sizeof(*nkv));
            if (nkv == NULL) {
                free(key);
                rc = cg_err_set(err, CG_ENOMEM, "out of memory");
                goto out;
            }
            s->kv = nkv;
            s->cap = ncap;
        }
        char *val = strndup(v, (size_t)(ve - v));
        if (val == NULL) {
            free(key);
            rc = cg_err_set(err, CG_ENOMEM, "out of memory");
            goto out;
        }
        s->kv[s->n] = (struct aws_ini_kv){.key = key, .value = val, .line = lineno};
        last = s->n++;
        last_indent = indent;
    }
    *out = ini;
    return 0;
out:
    aws__ini_cleanup(&ini);
    return rc;
}

/* ---- profiles ------------------------------------------------------------------------------ */

struct profile {
    char *name;
    const char *from; /* the variable that named it; NULL for "default" */
    char *cred_path;  /* NULL without a home directory */
    char *config_path;
    struct aws_ini cred;
    struct aws_ini config;
    const struct aws_ini_section *cs; /* the profile in the credentials file */
    const struct aws_ini_section *fs; /* ... in the config file */
};

static void profile_cleanup(struct profile *pf)
{
    free(pf->name);
    free(pf->cred_path);
    free(pf->config_path);
    aws__ini_cleanup(&pf->cred);
    aws__ini_cleanup(&pf->config);
    memset(pf, 0, sizeof(*pf));
}

static int load_ini(const char *path, struct aws_ini *ini, struct cg_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (path == NULL) {
        return 0;
    }
    int rc = cg_file_read(path, FILE_LIMIT, &buf, &len, err);
    if (rc == CG_ENOTFOUND) {
        cg_err_clear(err);
        return 0; /* a missing file is an empty one */
    }
    if (rc == 0) {
        rc = aws__ini_parse(ini, buf, len, path, err);
    }
    cg_secret_free(buf);
    return rc;
}

/* Reads both shared files and finds the profile. An explicitly named profile that neither
 * file has is an error (botocore's ProfileNotFound); "default" may be absent. */
static int profile_load(struct profile *pf, const struct envsrc *e, struct cg_err *err)
{
    const char *home = env_home(e);
    const char *name = env_get(e, "AWS_PROFILE");
    pf->from = "AWS_PROFILE";
    if (name == NULL) {
        name = env_get(e, "AWS_DEFAULT_PROFILE");
        pf->from = "AWS_DEFAULT_PROFILE";
    }
    if (name == NULL) {
        name = "default";
        pf->from = NULL;
    }
    const char *cp = env_get(e, "AWS_SHARED_CREDENTIALS_FILE");
    const char *fp = env_get(e, "AWS_CONFIG_FILE");
    pf->name = strdup(name);
    pf->cred_path = expand_home(cp != NULL ? cp : "~/.aws/credentials", home);
    pf->config_path = expand_home(fp != NULL ? fp : "~/.aws/config", home);
    if (pf->name == NULL || (pf->cred_path == NULL && home != NULL) ||
        (pf->config_path == NULL && home != NULL)) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    int rc = load_ini(pf->cred_path, &pf->cred, err);
    if (rc == 0) {
        rc = load_ini(pf->config_path, &pf->config, err);
    }
    if (rc < 0) {
        return cg_err_wrap(err, "reading the AWS shared files");
    }
    pf->cs = aws__ini_section(&pf->cred, pf->name);
    pf->fs = aws__ini_config_profile(&pf->config, pf->name);
    if (pf->from != NULL && pf->cs == NULL && pf->fs == NULL) {
        char nm[80];
        printable(nm, sizeof(nm), pf->name, strlen(pf->name));
        return cg_err_set(err, CG_EINVAL, "AWS profile '%s' (from %s) not found in '%s' or '%s'",
                          nm, pf->from, pf->cred_path ? pf->cred_path : "~/.aws/credentials",
                          pf->config_path ? pf->config_path : "~/.aws/config");
    }
    return 0;
}

/* A profile setting: the credentials file overrides the config file, as in botocore's merged
 * profile map. */
static const char *profile_get(const struct profile *pf, const char *key)
{
    const char *v = aws__ini_get(pf->cs, key);
    if (v == NULL) {
        v = aws__ini_get(pf->fs, key);
    }
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static int region_ok(const char *r)
{
    if (r == NULL || *r == '\0' || strlen(r) > 64) {
        return 0;
    }
    for (; *r != '\0'; r++) {
        if (!islower((unsigned char)*r) && !isdigit((unsigned char)*r) && *r != '-') {
            return 0;
        }
    }
    return 1;
}

static char *region_of(const struct envsrc *e, const struct profile *pf)
{
    const char *r = env_get(e, "AWS_REGION");
    if (r == NULL) {
        r = env_get(e, "AWS_DEFAULT_REGION");
    }
    if (r == NULL && pf != NULL) {
        r = profile_get(pf, "region");
    }
    return r != NULL ? strdup(r) : NULL;
}

char *aws_env_region(const struct aws_env *env)
{
    struct envsrc e = {env ? env->getenv : NULL, env ? env->home : NULL};
    char *r = region_of(&e, NULL);
    if (r != NULL) {
        return r;
    }
    struct profile pf = {0};
    if (profile_load(&pf, &e, NULL) == 0) {
        r = region_of(&e, &pf);
    }
    profile_cleanup(&pf);
    return r;
}

/* ---- STS answers --------------------------------------------------------------------------- */

static xmlNode *find_elem(xmlNode *n, const char *name)
{
    for (; n != NULL; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (strcmp((const char *)n->name, name) == 0) {
            return n;
        }
        /* libxml2 caps the depth at 256, which bounds this recursion */
        xmlNode *f = find_elem(n->children, name);
        if (f != NULL) {
            return f;
        }
    }
    return NULL;
}

static xmlNode *child_elem(xmlNode *parent, const char *name)
{
    for (xmlNode *n = parent != NULL ? parent->children : NULL; n != NULL; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0) {
            return n;
        }
    }
    return NULL;
}

/* The trimmed text of an element as a new string (NULL when absent or empty); with `secret`,
 * the copies libxml2 made are wiped as well. */
static char *elem_text(xmlDoc *doc, xmlNode *el, int secret, int *nomem)
{
    if (el == NULL) {
        return NULL;
    }
    xmlChar *t = xmlNodeGetContent(el);
    if (t == NULL) {
        return NULL;
    }
    size_t tl = strlen((char *)t);
    char *s = cg_strdup0(cg_trim((char *)t));
    if (s == NULL) {
        *nomem = 1;
    } else if (*s == '\0') {
        free(s);
        s = NULL;
    }
    if (secret) {
        cg_wipe(t, tl);
        for (xmlNode *c = el->children; c != NULL; c = c->next) {
            if (c->content != NULL && (doc->dict == NULL || !xmlDictOwns(doc->dict, c->content))) {
                cg_wipe(c->content, strlen((char *)c->content));
            }
        }
    }
    xmlFree(t);
    return s;
}

/* libxml2 reports some problems (encoding errors) through its generic handler even with
 * XML_PARSE_NOERROR, and the default one prints to stderr: library code prints nothing. */
static void xml_silent(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

int aws__sts_parse(const char *body, size_t len, long status, struct aws_credentials *out,
                   struct aws_sts_error *ae, struct cg_err *err)
{
    struct aws_credentials c = {0};
    char *exp = NULL;
    int nomem = 0;
    int rc = 0;
    memset(ae, 0, sizeof(*ae));
    if (len > AWS_STS_MAX_RESPONSE) {
        return cg_err_set(err, CG_ETOOBIG, "answer larger than %u bytes", AWS_STS_MAX_RESPONSE);
    }
    /* STS never sends a DTD; not parsing one rules out entity tricks whatever libxml2 allows */
    static const char dtd[] = "<!DOCTYPE";
    int has_dtd = 0;
    for (size_t i = 0; i + sizeof(dtd) - 1 <= len && !has_dtd; i++) {
        has_dtd = body[i] == '<' && memcmp(body + i, dtd, sizeof(dtd) - 1) == 0;
    }
    if (has_dtd && status == 200) {
        return cg_err_set(err, CG_EINVAL, "answer carries a DTD");
    }
    xmlDoc *doc = NULL;
    if (len > 0 && !has_dtd) {
        /* the handler is per thread in libxml2: saved and restored around our parse only */
        xmlGenericErrorFunc prev = xmlGenericError;
        void *prev_ctx = xmlGenericErrorContext;
        xmlSetGenericErrorFunc(NULL, xml_silent);
        doc = xmlReadMemory(body, (int)len, "sts.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                XML_PARSE_NOCDATA);
        xmlSetGenericErrorFunc(prev_ctx, prev);
    }
    xmlNode *root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
    if (status != 200) {
        xmlNode *e = find_elem(root, "Error");
        char *code = elem_text(doc, child_elem(e, "Code"), 0, &nomem);
        char *msg = elem_text(doc, child_elem(e, "Message"), 0, &nomem);
        if (code != NULL) {
            printable(ae->code, sizeof(ae->code), code, strlen(code));
        }
        if (msg != NULL) {
            printable(ae->message, sizeof(ae->message), msg, strlen(msg));
        }
        free(code);
        free(msg);
        rc = nomem
                 ? cg_err_set(err, CG_ENOMEM, "out of memory")
                 : cg_err_set(err, CG_ESTATUS, "HTTP %ld%s%s%s%s", status, ae->code[0] ? ": " : "",
                              ae->code, ae->message[0] ? ": " : "", ae->message);
        goto out;
    }
    if (root == NULL) {
        rc = cg_err_set(err, CG_EINVAL, "answer is not XML");
        goto out;
    }
    xmlNode *cr = find_elem(root, "Credentials");
    c.access_key_id = elem_text(doc, child_elem(cr, "AccessKeyId"), 0, &nomem);
    c.secret_access_key = elem_text(doc, child_elem(cr, "SecretAccessKey"), 1, &nomem);
    c.session_token = elem_text(doc, child_elem(cr, "SessionToken"), 1, &nomem);
    exp = elem_text(doc, child_elem(cr, "Expiration"), 0, &nomem);
    if (nomem) {
        rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        goto out;
    }
    if (c.access_key_id == NULL || c.secret_access_key == NULL || c.session_token == NULL) {
        rc = cg_err_set(err, CG_EINVAL, "answer has no complete Credentials element");
        goto out;
    }
    if (exp != NULL && cg_parse_rfc3339(exp, &c.expiration) < 0) {
        rc = cg_err_set(err, CG_EINVAL, "answer has an invalid Expiration");
        goto out;
    }
    out->access_key_id = c.access_key_id;
    out->secret_access_key = c.secret_access_key;
    out->session_token = c.session_token;
    out->expiration = c.expiration;
    memset(&c, 0, sizeof(c));
out:
    aws_credentials_cleanup(&c);
    free(exp);
    xmlFreeDoc(doc);
    return rc;
}

/* ---- the provider -------------------------------------------------------------------------- */

struct waiter {
    aws_creds_cb *cb;
    void *data;
    struct waiter *next;
};

struct fetch;

struct aws_creds_provider {
    struct cg_http *h;
    struct envsrc env;
    char *home;
    char *sts_endpoint;
    char *imds_endpoint;
    long imds_timeout_ms;

    struct aws_credentials cur; /* the cache; valid when have */
    int have;

    struct waiter *head;
    struct waiter **tail;
    int kick_pending; /* a zero-delay timer will serve the queue */
    struct fetch *fetch;
    int busy;       /* timers and requests that will call back into us */
    int delivering; /* inside waiters' callbacks */
    int dead;       /* the owner freed it */
};

struct fetch {
    struct aws_creds_provider *p;
    struct profile pf;
    int pf_loaded;
    char files[600]; /* the shared files, for the "tried ..." message */
    /* web identity */
    char *role_arn;
    char *token_file;
    char *session_name;
    char *sts_url;
    int token_retries;
    int idp_retries;
    /* container */
    char *container_url;
    char container_name[200]; /* the URL without its query, for messages */
    /* IMDS */
    char *imds_base;
    char *imds_token; /* secret */
    char *imds_role;
    long imds_ms;
};

static void step_web(struct fetch *f);
static void step_files(struct fetch *f);
static void step_container(struct fetch *f);
static void step_imds(struct fetch *f);

static void provider_release(struct aws_creds_provider *p)
{
    aws_credentials_cleanup(&p->cur);
    free(p->home);
    free(p->sts_endpoint);
    free(p->imds_endpoint);
    free(p);
}

static void maybe_release(struct aws_creds_provider *p)
{
    if (p->dead && p->busy == 0 && p->delivering == 0 && p->fetch == NULL && p->head == NULL) {
        provider_release(p);
    }
}

static int still_fresh(const struct aws_credentials *c, int64_t margin)
{
    return c->expiration == 0 || (int64_t)time(NULL) + margin < c->expiration;
}

/* Answers every queued waiter with creds (copied first: a callback may invalidate the cache or
 * free the provider) or err. Waiters added by the callbacks form a new queue. */
static void deliver_all(struct aws_creds_provider *p, const struct aws_credentials *creds,
                        const struct cg_err *err)
{
    struct waiter *w = p->head;
    struct aws_credentials copy = {0};
    struct cg_err nomem = {0};
    p->head = NULL;
    p->tail = &p->head;
    if (creds != NULL && aws_credentials_copy(&copy, creds) < 0) {
        creds = NULL;
        err = &nomem;
        cg_err_set(&nomem, CG_ENOMEM, "out of memory");
    }
    p->delivering++;
    while (w != NULL) {
        struct waiter *next = w->next;
        w->cb(creds != NULL ? &copy : NULL, creds != NULL ? NULL : err, w->data);
        free(w);
        w = next;
    }
    p->delivering--;
    aws_credentials_cleanup(&copy);
    maybe_release(p);
}

static void deliver_canceled(struct aws_creds_provider *p)
{
    struct cg_err e = {0};
    cg_err_set(&e, CG_ECANCELED, "AWS credentials lookup cancelled");
    deliver_all(p, NULL, &e);
}

static void fetch_free(struct fetch *f)
{
    profile_cleanup(&f->pf);
    free(f->role_arn);
    free(f->token_file);
    free(f->session_name);
    free(f->sts_url);
    free(f->container_url);
    free(f->imds_base);
    cg_secret_free(f->imds_token);
    free(f->imds_role);
    free(f);
}

/* Ends the fetch: creds (taken; NULL on failure) become the cache. */
static void finish(struct fetch *f, struct aws_credentials *creds, const struct cg_err *err)
{
    struct aws_creds_provider *p = f->p;
    p->fetch = NULL;
    fetch_free(f);
    if (p->dead) {
        aws_credentials_cleanup(creds);
        deliver_canceled(p);
        return;
    }
    if (creds != NULL) {
        char when[32] = "never";
        if (creds->expiration != 0) {
            cg_format_rfc3339(creds->expiration, when, sizeof(when));
        }
        CG_LOG(CG_LOG_DEBUG, "aws", "credentials from %s (access key %s, expire %s)", creds->source,
               creds->access_key_id, when);
        aws_credentials_cleanup(&p->cur);
        p->cur = *creds;
        p->have = 1;
        memset(creds, 0, sizeof(*creds));
        deliver_all(p, &p->cur, NULL);
        return;
    }
    if (p->have && still_fresh(&p->cur, STALE_OK_S)) {
        /* the credentials we hold still work for a while: a failed early refresh is retried
         * on the next call instead of failing this one */
        CG_LOG(CG_LOG_DEBUG, "aws", "refreshing credentials failed, using cached ones: %s",
               err->msg);
        deliver_all(p, &p->cur, NULL);
        return;
    }
    deliver_all(p, NULL, err);
}

static void finish_err(struct fetch *f, int code, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish_err(struct fetch *f, int code, long status, const char *fmt, ...)
{
    struct cg_err e = {0};
    char msg[CG_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cg_err_set(&e, code, "%s", msg);
    e.http_status = status;
    finish(f, NULL, &e);
}

static void finish_found(struct fetch *f, struct aws_credentials *c, const char *source)
{
    if ((c->source = strdup(source)) == NULL) {
        aws_credentials_cleanup(c);
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    finish(f, c, NULL);
}

/* Nothing configured anywhere, and no instance metadata: the one CG_EAUTH message. */
static void no_source(struct fetch *f, const char *imds_note)
{
    finish_err(f, CG_EAUTH, 0,
               "no AWS credentials found: tried environment, web identity, shared files (%s), "
               "container provider, instance metadata (%s)",
               f->files, imds_note);
}

static int ensure_profile(struct fetch *f, struct cg_err *err)
{
    if (f->pf_loaded) {
        return 0;
    }
    f->pf_loaded = 1;
    int rc = profile_load(&f->pf, &f->p->env, err);
    snprintf(f->files, sizeof(f->files), "%s, %s",
             f->pf.cred_path ? f->pf.cred_path : "no home directory for ~/.aws/credentials",
             f->pf.config_path ? f->pf.config_path : "no home directory for ~/.aws/config");
    return rc;
}

static int set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v != NULL ? strdup(v) : NULL;
    return v == NULL || *dst != NULL ? 0 : CG_ENOMEM;
}

/* ---- 1. environment ------------------------------------------------------------------------ */

static void step_env(struct fetch *f)
{
    const struct envsrc *e = &f->p->env;
    const char *akid = env_get(e, "AWS_ACCESS_KEY_ID");
    const char *secret = env_get(e, "AWS_SECRET_ACCESS_KEY");
    const char *token = env_get(e, "AWS_SESSION_TOKEN");
    const char *exp = env_get(e, "AWS_CREDENTIAL_EXPIRATION");
    struct aws_credentials c = {0};
    if (token == NULL) {
        token = env_get(e, "AWS_SECURITY_TOKEN");
    }
    if (akid == NULL && secret == NULL) {
        step_web(f);
        return;
    }
    if (akid == NULL || secret == NULL) {
        finish_err(f, CG_EAUTH, 0, "environment: %s is set but %s is not",
                   akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                   akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return;
    }
    if (exp != NULL && cg_parse_rfc3339(exp, &c.expiration) < 0) {
        char v[64];
        printable(v, sizeof(v), exp, strlen(exp));
        finish_err(f, CG_EINVAL, 0,
                   "environment: AWS_CREDENTIAL_EXPIRATION '%s' is not an RFC 3339 time", v);
        return;
    }
    if (c.expiration != 0 && c.expiration <= (int64_t)time(NULL)) {
        finish_err(f, CG_EAUTH, 0,
                   "environment: the credentials expired at %s (AWS_CREDENTIAL_EXPIRATION)", exp);
        return;
    }
    if (set_str(&c.access_key_id, akid) < 0 || set_str(&c.secret_access_key, secret) < 0 ||
        set_str(&c.session_token, token) < 0) {
        aws_credentials_cleanup(&c);
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    finish_found(f, &c, "environment");
}

/* ---- 2. web identity ----------------------------------------------------------------------- */

static void sts_submit(struct fetch *f);

static int sts_url_for(struct fetch *f, struct cg_err *err)
{
    struct aws_creds_provider *p = f->p;
    const struct envsrc *e = &p->env;
    const char *base = p->sts_endpoint;
    const char *what = "STS endpoint";
    char *region = NULL;
    char buf[160];
    if (base == NULL && !env_true(e, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
        if ((base = env_get(e, "AWS_ENDPOINT_URL_STS")) != NULL) {
            what = "AWS_ENDPOINT_URL_STS";
        } else if ((base = env_get(e, "AWS_ENDPOINT_URL")) != NULL) {
            what = "AWS_ENDPOINT_URL";
        }
    }
    if (base == NULL) {
        /* the region may live in the profile only */
        if (env_get(e, "AWS_REGION") == NULL && env_get(e, "AWS_DEFAULT_REGION") == NULL) {
            int prc = ensure_profile(f, err);
            if (prc < 0) {
                return prc;
            }
        }
        region = region_of(e, f->pf_loaded ? &f->pf : NULL);
        if (region != NULL && !region_ok(region)) {
            char v[72];
            printable(v, sizeof(v), region, strlen(region));
            free(region);
            return cg_err_set(err, CG_EINVAL, "invalid AWS region '%s'", v);
        }
        if (region == NULL) {
            snprintf(buf, sizeof(buf), "https://sts.amazonaws.com");
        } else {
            snprintf(buf, sizeof(buf), "https://sts.%s.amazonaws.com%s", region,
                     strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
        }
        free(region);
        base = buf;
    }
    int rc = cg_url_check_transport(base, 0, what, err);
    if (rc < 0) {
        return rc;
    }
    struct aws_url u = {0};
    if ((rc = aws__url_parse(base, what, &u, err)) < 0) {
        return rc;
    }
    aws__url_cleanup(&u);
    /* a base without a path gets "/", the Query API's only path */
    int has_path = strchr(strstr(base, "://") + 3, '/') != NULL;
    size_t n = strlen(base) + 2;
    free(f->sts_url);
    if ((f->sts_url = malloc(n)) == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    snprintf(f->sts_url, n, "%s%s", base, has_path ? "" : "/");
    return 0;
}

static void step_web(struct fetch *f)
{
    const struct envsrc *e = &f->p->env;
    struct cg_err err = {0};
    const char *role = env_get(e, "AWS_ROLE_ARN");
    const char *file = env_get(e, "AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *sess = env_get(e, "AWS_ROLE_SESSION_NAME");
    if (role == NULL || file == NULL || sess == NULL) {
        /* each setting falls back to the profile on its own, as in botocore */
        if (ensure_profile(f, &err) < 0) {
            finish(f, NULL, &err);
            return;
        }
        role = role ? role : profile_get(&f->pf, "role_arn");
        file = file ? file : profile_get(&f->pf, "web_identity_token_file");
        sess = sess ? sess : profile_get(&f->pf, "role_session_name");
    }
    if (role == NULL || file == NULL) {
        step_files(f);
        return;
    }
    char defname[48];
    if (sess == NULL) {
        snprintf(defname, sizeof(defname), "cloudgrant-%lld", (long long)time(NULL));
        sess = defname;
    }
    char *path = expand_home(file, env_home(e));
    if (path == NULL || set_str(&f->role_arn, role) < 0 || set_str(&f->session_name, sess) < 0) {
        free(path);
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    f->token_file = path;
    if (sts_url_for(f, &err) < 0) {
        char r[160];
        printable(r, sizeof(r), role, strlen(role));
        cg_err_wrap(&err, "web identity for role '%s'", r);
        finish(f, NULL, &err);
        return;
    }
    sts_submit(f);
}

static int is_code(const struct aws_sts_error *ae, const char *code)
{
    return strcmp(ae->code, code) == 0;
}

static void sts_fail(struct fetch *f, int code, long status, const char *what)
{
    char r[160];
    printable(r, sizeof(r), f->role_arn, strlen(f->role_arn));
    finish_err(f, code, status, "sts AssumeRoleWithWebIdentity for role '%s': %s", r, what);
}

static void sts_retry_fire(void *data, int canceled)
{
    struct fetch *f = data;
    f->p->busy--;
    if (canceled || f->p->dead) {
        finish_err(f, CG_ECANCELED, 0, "AWS credentials lookup cancelled");
        return;
    }
    sts_submit(f);
}

static void on_sts(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    struct aws_creds_provider *p = f->p;
    struct aws_credentials c = {0};
    struct aws_sts_error ae;
    struct cg_err err = {0};
    p->busy--;
    if (p->dead) {
        finish_err(f, CG_ECANCELED, 0, "AWS credentials lookup cancelled");
        return;
    }
    if (herr != NULL) {
        sts_fail(f, herr->code, herr->http_status, herr->msg);
        return;
    }
    long status = cg_http_req_status(req);
    size_t len = 0;
    char *body = cg_http_req_take_body(req, &len);
    if (body == NULL) {
        sts_fail(f, CG_ENOMEM, status, "out of memory");
        return;
    }
    int rc = aws__sts_parse(body, len, status, &c, &ae, &err);
    cg_wipe(body, len);
    free(body);
    if (rc == 0) {
        finish_found(f, &c, "web-identity");
        return;
    }
    if (rc == CG_ESTATUS) {
        if ((is_code(&ae, "InvalidIdentityToken") || is_code(&ae, "ExpiredTokenException")) &&
            f->token_retries < STS_TOKEN_RETRIES) {
            /* kubelet may have rotated the token since we read it: read it again */
            f->token_retries++;
            CG_LOG(CG_LOG_DEBUG, "aws", "sts answered %s, re-reading the token", ae.code);
            sts_submit(f);
            return;
        }
        if (is_code(&ae, "IDPCommunicationError") && f->idp_retries < STS_IDP_RETRIES) {
            f->idp_retries++;
            if (cg_http_after(p->h, 500L * f->idp_retries, sts_retry_fire, f) == 0) {
                p->busy++;
                return;
            }
        }
        char what[CG_ERR_MSG_MAX];
        if (ae.code[0] != '\0') {
            snprintf(what, sizeof(what), "%s: %s", ae.code,
                     ae.message[0] ? ae.message : "(no message)");
        } else {
            snprintf(what, sizeof(what), "HTTP %ld", status);
        }
        sts_fail(f, status >= 500 ? CG_ESTATUS : CG_EAUTH, status, what);
        return;
    }
    sts_fail(f, rc, status, err.msg);
}

static int form_param(struct cg_buf *b, const char *name, const char *value)
{
    int rc = cg_buf_printf(b, "&%s=", name);
    return rc < 0 ? rc : aws__uri_encode(b, value, strlen(value), 0);
}

/* One AssumeRoleWithWebIdentity call, unsigned (the token is the credential), with the token
 * read from its file each time. */
static void sts_submit(struct fetch *f)
{
    struct aws_creds_provider *p = f->p;
    struct cg_err err = {0};
    struct cg_buf b;
    char *tok = NULL;
    size_t tlen = 0;
    struct cg_http_req *req = NULL;
    char r[160];
    printable(r, sizeof(r), f->role_arn, strlen(f->role_arn));
    cg_buf_init(&b, 0);
    b.sensitive = 1;
    int rc = cg_file_read(f->token_file, TOKEN_LIMIT, &tok, &tlen, &err);
    if (rc < 0) {
        cg_err_wrap(&err, "web identity for role '%s': reading the token", r);
        goto fail;
    }
    cg_trim(tok);
    if (tok[0] == '\0') {
        rc = cg_err_set(&err, CG_EAUTH, "web identity for role '%s': token file '%s' is empty", r,
                        f->token_file);
        goto fail;
    }
    if ((rc = cg_buf_append_str(&b, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15")) < 0 ||
        (rc = form_param(&b, "RoleArn", f->role_arn)) < 0 ||
        (rc = form_param(&b, "RoleSessionName", f->session_name)) < 0 ||
        (rc = form_param(&b, "WebIdentityToken", tok)) < 0) {
        cg_err_set(&err, rc, "out of memory");
        goto fail;
    }
    if ((req = cg_http_req_new("POST", f->sts_url)) == NULL ||
        (rc = cg_http_req_header(req, "Content-Type",
                                 "application/x-www-form-urlencoded; charset=utf-8")) < 0 ||
        (rc = cg_http_req_header(req, "Accept", "text/xml")) < 0 ||
        (rc = cg_http_req_set_label(req, "STS AssumeRoleWithWebIdentity")) < 0) {
        rc = cg_err_set(&err, CG_ENOMEM, "out of memory");
        goto fail;
    }
    size_t blen = b.len;
    char *body = cg_buf_steal(&b, NULL);
    if (body == NULL || (rc = cg_http_req_body_take(req, body, blen)) < 0) {
        rc = cg_err_set(&err, CG_ENOMEM, "out of memory");
        goto fail;
    }
    cg_http_req_set_timeout(req, STS_TIMEOUT_MS);
    cg_http_req_set_max_attempts(req, 3);
    cg_http_req_set_max_body(req, AWS_STS_MAX_RESPONSE);
    if ((rc = cg_http_submit(p->h, req, on_sts, f, &err)) < 0) {
        cg_err_wrap(&err, "sts AssumeRoleWithWebIdentity for role '%s'", r);
        goto fail;
    }
    p->busy++;
    cg_wipe(tok, tlen);
    free(tok);
    return;
fail:
    cg_http_req_free(req);
    if (tok != NULL) {
        cg_wipe(tok, tlen);
        free(tok);
    }
    cg_buf_cleanup(&b);
    finish(f, NULL, &err);
}

/* ---- 3. shared files ----------------------------------------------------------------------- */

/* Static keys from one file's profile section: 1 found, 0 none there, <0 error. */
static int keys_from(const struct aws_ini_section *s, const char *path, const char *profile,
                     struct aws_credentials *c, struct cg_err *err)
{
    const char *akid = aws__ini_get(s, "aws_access_key_id");
    const char *secret = aws__ini_get(s, "aws_secret_access_key");
    const char *token = aws__ini_get(s, "aws_session_token");
    akid = akid && *akid ? akid : NULL;
    secret = secret && *secret ? secret : NULL;
    if (akid == NULL && secret == NULL) {
        return 0;
    }
    if (akid == NULL || secret == NULL) {
        return cg_err_set(err, CG_EAUTH, "%s: profile '%s' has %s but no %s", path, profile,
                          akid ? "aws_access_key_id" : "aws_secret_access_key",
                          akid ? "aws_secret_access_key" : "aws_access_key_id");
    }
    if (token == NULL) {
        token = aws__ini_get(s, "aws_security_token");
    }
    if (set_str(&c->access_key_id, akid) < 0 || set_str(&c->secret_access_key, secret) < 0 ||
        set_str(&c->session_token, token && *token ? token : NULL) < 0) {
        aws_credentials_cleanup(c);
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    return 1;
}

static void step_files(struct fetch *f)
{
    struct cg_err err = {0};
    struct aws_credentials c = {0};
    if (ensure_profile(f, &err) < 0) {
        finish(f, NULL, &err);
        return;
    }
    const struct profile *pf = &f->pf;
    char nm[80];
    printable(nm, sizeof(nm), pf->name, strlen(pf->name));
    /* botocore resolves these before static keys; quietly skipping them would hand out other
     * credentials (the node's) than the user configured */
    const char *unsupported = NULL;
    if (profile_get(pf, "role_arn") != NULL &&
        (profile_get(pf, "source_profile") || profile_get(pf, "credential_source"))) {
        unsupported = "role_arn with source_profile or credential_source (assume role)";
    } else if (profile_get(pf, "sso_session") || profile_get(pf, "sso_start_url")) {
        unsupported = "AWS IAM Identity Center (sso_*)";
    }
    if (unsupported != NULL) {
        finish_err(f, CG_EINVAL, 0,
                   "AWS profile '%s' uses %s, which is not supported: use web "
                   "identity, static keys or the container provider",
                   nm, unsupported);
        return;
    }
    int rc = keys_from(pf->cs, pf->cred_path, nm, &c, &err);
    if (rc == 1) {
        finish_found(f, &c, "shared-credentials-file");
        return;
    }
    if (rc == 0 && profile_get(pf, "credential_process") != NULL) {
        finish_err(f, CG_EINVAL, 0,
                   "AWS profile '%s' uses credential_process, which is not supported", nm);
        return;
    }
    if (rc == 0) {
        rc = keys_from(pf->fs, pf->config_path, nm, &c, &err);
    }
    if (rc == 1) {
        finish_found(f, &c, "config-file");
        return;
    }
    if (rc < 0) {
        finish(f, NULL, &err);
        return;
    }
    step_container(f);
}

/* ---- 4. container provider ----------------------------------------------------------------- */

static int container_host_ok(const char *host)
{
    static const char *const allowed[] = {"169.254.170.2", "169.254.170.23", "[fd00:ec2::23]",
                                          "localhost", "[::1]"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (strcasecmp(host, allowed[i]) == 0) {
            return 1;
        }
    }
    unsigned a, b, c, d;
    char tail;
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

static void on_container(struct cg_http_req *req, const struct cg_err *herr, void *data);

static char *read_auth(struct fetch *f, struct cg_err *err, int *rc)
{
    const struct envsrc *e = &f->p->env;
    const char *file = env_get(e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *lit = env_get(e, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char *tok = NULL;
    *rc = 0;
    if (file != NULL) {
        *rc = cg_file_read(file, TOKEN_LIMIT, &tok, NULL, err);
        if (*rc < 0) {
            cg_err_wrap(err, "container credentials: reading the authorization token");
            return NULL;
        }
        if (strpbrk(tok, "\r\n") != NULL) {
            cg_secret_free(tok);
            *rc = cg_err_set(err, CG_EINVAL,
                             "container credentials: authorization token file '%s' contains a "
                             "line break",
                             file);
            return NULL;
        }
        return tok;
    }
    if (lit != NULL) {
        if (strpbrk(lit, "\r\n") != NULL) {
            *rc = cg_err_set(err, CG_EINVAL,
                             "container credentials: AWS_CONTAINER_AUTHORIZATION_TOKEN contains "
                             "a line break");
            return NULL;
        }
        if ((tok = strdup(lit)) == NULL) {
            *rc = cg_err_set(err, CG_ENOMEM, "out of memory");
        }
    }
    return tok;
}

static void step_container(struct fetch *f)
{
    struct aws_creds_provider *p = f->p;
    const struct envsrc *e = &p->env;
    const char *rel = env_get(e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env_get(e, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    struct cg_err err = {0};
    struct aws_url u = {0};
    struct cg_http_req *req = NULL;
    char *auth = NULL;
    int rc;
    if (rel == NULL && full == NULL) {
        step_imds(f);
        return;
    }
    if (rel != NULL) {
        size_t n = strlen(CONTAINER_HOST) + strlen(rel) + 2;
        if ((f->container_url = malloc(n)) == NULL) {
            finish_err(f, CG_ENOMEM, 0, "out of memory");
            return;
        }
        snprintf(f->container_url, n, "%s%s%s", CONTAINER_HOST, rel[0] == '/' ? "" : "/", rel);
    } else if (set_str(&f->container_url, full) < 0) {
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    printable(f->container_name, sizeof(f->container_name), f->container_url,
              strcspn(f->container_url, "?#"));
    rc = aws__url_parse(f->container_url,
                        rel ? "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
                            : "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                        &u, &err);
    if (rc < 0) {
        finish(f, NULL, &err);
        return;
    }
    if (!u.https && !container_host_ok(u.host)) {
        aws__url_cleanup(&u);
        finish_err(f, CG_EINVAL, 0,
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI '%s': plain http is allowed only to "
                   "loopback, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]",
                   f->container_name);
        return;
    }
    aws__url_cleanup(&u);
    auth = read_auth(f, &err, &rc);
    if (rc < 0) {
        finish(f, NULL, &err);
        return;
    }
    if ((req = cg_http_req_new("GET", f->container_url)) == NULL ||
        cg_http_req_header(req, "Accept", "application/json") < 0 ||
        (auth != NULL && cg_http_req_header(req, "Authorization", auth) < 0) ||
        cg_http_req_set_proxy(req, "") < 0 ||
        cg_http_req_set_label(req, "container credentials") < 0) {
        cg_http_req_free(req);
        cg_secret_free(auth);
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    cg_secret_free(auth);
    /* botocore: 2 s per attempt, 3 attempts */
    cg_http_req_set_attempt_timeout(req, CONTAINER_ATTEMPT_MS);
    cg_http_req_set_connect_timeout(req, CONTAINER_ATTEMPT_MS);
    cg_http_req_set_timeout(req, 3 * CONTAINER_ATTEMPT_MS + 2000);
    cg_http_req_set_max_attempts(req, 3);
    cg_http_req_set_max_body(req, JSON_LIMIT);
    if (cg_http_submit(p->h, req, on_container, f, &err) < 0) {
        cg_http_req_free(req);
        cg_err_wrap(&err, "container credentials from '%s'", f->container_name);
        finish(f, NULL, &err);
        return;
    }
    p->busy++;
}

/* AccessKeyId, SecretAccessKey, Token, Expiration: the container provider's and IMDS's shape. */
static int creds_from_json(json_t *doc, struct aws_credentials *c, const char **missing)
{
    const char *akid = json_string_value(json_object_get(doc, "AccessKeyId"));
    const char *secret = json_string_value(json_object_get(doc, "SecretAccessKey"));
    const char *token = json_string_value(json_object_get(doc, "Token"));
    const char *exp = json_string_value(json_object_get(doc, "Expiration"));
    *missing = NULL;
    if (akid == NULL || *akid == '\0') {
        *missing = "AccessKeyId";
    } else if (secret == NULL || *secret == '\0') {
        *missing = "SecretAccessKey";
    }
    if (*missing != NULL) {
        return CG_EINVAL;
    }
    if (exp != NULL && cg_parse_rfc3339(exp, &c->expiration) < 0) {
        *missing = "a valid Expiration";
        return CG_EINVAL;
    }
    if (set_str(&c->access_key_id, akid) < 0 || set_str(&c->secret_access_key, secret) < 0 ||
        set_str(&c->session_token, token && *token ? token : NULL) < 0) {
        aws_credentials_cleanup(c);
        return CG_ENOMEM;
    }
    return 0;
}

/* Loads a JSON answer and wipes every copy of it we made (it carries secrets). */
static json_t *take_json(struct cg_http_req *req)
{
    size_t len = 0;
    char *body = cg_http_req_take_body(req, &len);
    if (body == NULL) {
        return NULL;
    }
    json_t *doc = json_loadb(body, len, 0, NULL);
    cg_wipe(body, len);
    free(body);
    return doc;
}

/* jansson keeps the strings it parsed: wipe the secrets before freeing the document. */
static void json_wipe_free(json_t *doc)
{
    static const char *const keys[] = {"SecretAccessKey", "Token"};
    for (size_t i = 0; doc != NULL && i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(doc, keys[i]);
        if (json_is_string(v)) {
            cg_wipe((char *)json_string_value(v), json_string_length(v));
        }
    }
    json_decref(doc);
}

static void on_container(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    struct aws_creds_provider *p = f->p;
    struct aws_credentials c = {0};
    p->busy--;
    if (p->dead) {
        finish_err(f, CG_ECANCELED, 0, "AWS credentials lookup cancelled");
        return;
    }
    if (herr != NULL) {
        finish_err(f, herr->code, 0, "container credentials from '%s': %s", f->container_name,
                   herr->msg);
        return;
    }
    long status = cg_http_req_status(req);
    json_t *doc = take_json(req);
    if (status != 200) {
        /* ECS and EKS Pod Identity explain refusals in {"code"/"Code", "message"/"Message"} */
        const char *code = json_string_value(json_object_get(doc, "code"));
        const char *msg = json_string_value(json_object_get(doc, "message"));
        char cm[200] = "";
        code = code ? code : json_string_value(json_object_get(doc, "Code"));
        msg = msg ? msg : json_string_value(json_object_get(doc, "Message"));
        if (code != NULL || msg != NULL) {
            char m[180];
            char pm[180];
            snprintf(m, sizeof(m), "%s%s%s", code ? code : "", code && msg ? ": " : "",
                     msg ? msg : "");
            printable(pm, sizeof(pm), m, sizeof(m));
            snprintf(cm, sizeof(cm), " (%s)", pm);
        }
        json_wipe_free(doc);
        finish_err(f, status == 401 || status == 403 ? CG_EAUTH : CG_ESTATUS, status,
                   "container credentials from '%s': HTTP %ld%s", f->container_name, status, cm);
        return;
    }
    const char *missing = "a JSON object";
    int rc = json_is_object(doc) ? creds_from_json(doc, &c, &missing) : CG_EINVAL;
    json_wipe_free(doc);
    if (rc == CG_ENOMEM) {
        finish_err(f, rc, 0, "out of memory");
    } else if (rc < 0) {
        finish_err(f, CG_EINVAL, status, "container credentials from '%s': answer has no %s",
                   f->container_name, missing);
    } else {
        finish_found(f, &c, "container");
    }
}

/* ---- 5. IMDSv2 ----------------------------------------------------------------------------- */

static void on_imds_token(struct cg_http_req *req, const struct cg_err *herr, void *data);
static void on_imds_role(struct cg_http_req *req, const struct cg_err *herr, void *data);
static void on_imds_creds(struct cg_http_req *req, const struct cg_err *herr, void *data);

/* One metadata request: no proxy (the link-local address must not leave the node), short
 * attempts, two of them, so an instance that drops the reply (hop limit 1 from a pod) costs
 * about two timeouts. */
static void imds_req(struct fetch *f, const char *method, const char *path, cg_http_done_cb *done)
{
    struct aws_creds_provider *p = f->p;
    struct cg_err err = {0};
    struct cg_buf url;
    cg_buf_init(&url, 0);
    struct cg_http_req *req = NULL;
    if (cg_buf_printf(&url, "%s%s", f->imds_base, path) < 0 ||
        (req = cg_http_req_new(method, url.data)) == NULL || cg_http_req_set_proxy(req, "") < 0 ||
        cg_http_req_set_label(req, "instance metadata") < 0 ||
        (f->imds_token == NULL
             ? cg_http_req_header(req, "X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL)
             : cg_http_req_header(req, "X-aws-ec2-metadata-token", f->imds_token)) < 0) {
        cg_http_req_free(req);
        cg_buf_cleanup(&url);
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    cg_buf_cleanup(&url);
    cg_http_req_set_attempt_timeout(req, f->imds_ms);
    cg_http_req_set_connect_timeout(req, f->imds_ms);
    cg_http_req_set_timeout(req, 2 * f->imds_ms + 500);
    cg_http_req_set_max_attempts(req, 2);
    cg_http_req_set_max_body(req, JSON_LIMIT);
    if (cg_http_submit(p->h, req, done, f, &err) < 0) {
        cg_http_req_free(req);
        cg_err_wrap(&err, "instance metadata credentials");
        finish(f, NULL, &err);
        return;
    }
    p->busy++;
}

static void step_imds(struct fetch *f)
{
    struct aws_creds_provider *p = f->p;
    const struct envsrc *e = &p->env;
    if (!f->pf_loaded) {
        struct cg_err err = {0};
        if (ensure_profile(f, &err) < 0) {
            finish(f, NULL, &err);
            return;
        }
    }
    if (env_true(e, "AWS_EC2_METADATA_DISABLED")) {
        no_source(f, "disabled by AWS_EC2_METADATA_DISABLED");
        return;
    }
    const char *base = p->imds_endpoint;
    if (base == NULL) {
        base = env_get(e, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    }
    if (base == NULL) {
        const char *mode = env_get(e, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        base = mode != NULL && strcasecmp(mode, "IPv6") == 0 ? IMDS_DEFAULT_V6 : IMDS_DEFAULT;
    }
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    if ((f->imds_base = strndup(base, n)) == NULL) {
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    f->imds_ms = p->imds_timeout_ms > 0 ? p->imds_timeout_ms : 1000;
    imds_req(f, "PUT", "/latest/api/token", on_imds_token);
}

static int imds_enter(struct fetch *f)
{
    f->p->busy--;
    if (f->p->dead) {
        finish_err(f, CG_ECANCELED, 0, "AWS credentials lookup cancelled");
        return -1;
    }
    return 0;
}

static void on_imds_token(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    char note[CG_ERR_MSG_MAX];
    if (imds_enter(f) < 0) {
        return;
    }
    if (herr != NULL) {
        /* not on EC2, or the reply does not reach a pod: IMDS is simply absent */
        printable(note, sizeof(note), herr->msg, strlen(herr->msg));
        no_source(f, note);
        return;
    }
    long status = cg_http_req_status(req);
    if (status != 200) {
        snprintf(note, sizeof(note), "%s: %s answered HTTP %ld", f->imds_base,
                 status == 403 || status == 404 || status == 405 ? "no IMDSv2, token request"
                                                                 : "token request",
                 status);
        no_source(f, note);
        return;
    }
    size_t len = 0;
    char *tok = cg_http_req_take_body(req, &len);
    if (tok == NULL) {
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    cg_trim(tok);
    if (tok[0] == '\0' || strlen(tok) > 4096 || strpbrk(tok, "\r\n") != NULL) {
        cg_wipe(tok, len);
        free(tok);
        finish_err(f, CG_EINVAL, status, "instance metadata credentials: %s gave an unusable token",
                   f->imds_base);
        return;
    }
    f->imds_token = tok;
    imds_req(f, "GET", "/latest/meta-data/iam/security-credentials/", on_imds_role);
}

static int role_name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 128) {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!isalnum((unsigned char)*s) && strchr("+=,.@_-", *s) == NULL) {
            return 0;
        }
    }
    return 1;
}

static void on_imds_role(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    if (imds_enter(f) < 0) {
        return;
    }
    if (herr != NULL) {
        finish_err(f, herr->code, 0, "instance metadata credentials: %s", herr->msg);
        return;
    }
    long status = cg_http_req_status(req);
    if (status == 404) {
        no_source(f, "the instance has no IAM role");
        return;
    }
    if (status != 200) {
        finish_err(f, CG_ESTATUS, status,
                   "instance metadata credentials: listing roles at %s answered HTTP %ld",
                   f->imds_base, status);
        return;
    }
    size_t len = 0;
    const char *body = cg_http_req_body(req, &len);
    size_t l = body != NULL ? strcspn(body, "\r\n") : 0;
    char *role = body != NULL ? strndup(body, l) : NULL;
    if (role == NULL) {
        finish_err(f, CG_ENOMEM, 0, "out of memory");
        return;
    }
    cg_trim(role);
    if (role[0] == '\0') {
        free(role);
        no_source(f, "the instance has no IAM role");
        return;
    }
    if (!role_name_ok(role)) {
        free(role);
        finish_err(f, CG_EINVAL, status,
                   "instance metadata credentials: %s lists an invalid role name", f->imds_base);
        return;
    }
    f->imds_role = role;
    char path[200];
    snprintf(path, sizeof(path), "/latest/meta-data/iam/security-credentials/%s", role);
    imds_req(f, "GET", path, on_imds_creds);
}

static void on_imds_creds(struct cg_http_req *req, const struct cg_err *herr, void *data)
{
    struct fetch *f = data;
    struct aws_credentials c = {0};
    if (imds_enter(f) < 0) {
        return;
    }
    if (herr != NULL) {
        finish_err(f, herr->code, 0, "instance metadata credentials for role '%s': %s",
                   f->imds_role, herr->msg);
        return;
    }
    long status = cg_http_req_status(req);
    if (status != 200) {
        finish_err(f, CG_ESTATUS, status, "instance metadata credentials for role '%s': HTTP %ld",
                   f->imds_role, status);
        return;
    }
    json_t *doc = take_json(req);
    const char *code = json_string_value(json_object_get(doc, "Code"));
    if (!json_is_object(doc) || (code != NULL && strcmp(code, "Success") != 0)) {
        char cv[64] = "";
        if (code != NULL) {
            printable(cv, sizeof(cv), code, strlen(code));
        }
        json_wipe_free(doc);
        finish_err(f, CG_EAUTH, status, "instance metadata credentials for role '%s': %s%s",
                   f->imds_role, cv[0] ? "Code " : "answer is not a JSON object", cv);
        return;
    }
    const char *missing = NULL;
    int rc = creds_from_json(doc, &c, &missing);
    json_wipe_free(doc);
    if (rc == CG_ENOMEM) {
        finish_err(f, rc, 0, "out of memory");
    } else if (rc < 0) {
        finish_err(f, CG_EINVAL, status,
                   "instance metadata credentials for role '%s': answer has no %s", f->imds_role,
                   missing);
    } else {
        finish_found(f, &c, "instance-metadata");
    }
}

/* ---- public API ---------------------------------------------------------------------------- */

int aws_creds_chain_new(struct aws_creds_provider **out, struct cg_http *h,
                        const struct aws_env *env, struct cg_err *err)
{
    struct aws_creds_provider *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    p->h = h;
    p->tail = &p->head;
    if (env != NULL) {
        p->env.getenv = env->getenv;
        p->imds_timeout_ms = env->imds_timeout_ms;
        if ((env->home != NULL && (p->home = strdup(env->home)) == NULL) ||
            (env->sts_endpoint != NULL && (p->sts_endpoint = strdup(env->sts_endpoint)) == NULL) ||
            (env->imds_endpoint != NULL &&
             (p->imds_endpoint = strdup(env->imds_endpoint)) == NULL)) {
            provider_release(p);
            return cg_err_set(err, CG_ENOMEM, "out of memory");
        }
    }
    p->env.home = p->home;
    *out = p;
    return 0;
}

void aws_creds_provider_free(struct aws_creds_provider *p)
{
    if (p == NULL) {
        return;
    }
    p->dead = 1;
    maybe_release(p);
}

void aws_creds_invalidate(struct aws_creds_provider *p)
{
    if (p == NULL) {
        return;
    }
    aws_credentials_cleanup(&p->cur);
    p->have = 0;
}

static void start_fetch(struct aws_creds_provider *p)
{
    struct fetch *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        struct cg_err e = {0};
        cg_err_set(&e, CG_ENOMEM, "out of memory");
        deliver_all(p, NULL, &e);
        return;
    }
    f->p = p;
    p->fetch = f;
    step_env(f);
}

static void kick(void *data, int canceled)
{
    struct aws_creds_provider *p = data;
    p->busy--;
    p->kick_pending = 0;
    if (canceled || p->dead) {
        deliver_canceled(p);
        return;
    }
    if (p->fetch != NULL) {
        return; /* the running fetch answers the queue */
    }
    if (p->have && still_fresh(&p->cur, REFRESH_MARGIN_S)) {
        deliver_all(p, &p->cur, NULL);
        return;
    }
    start_fetch(p);
}

int aws_creds_get(struct aws_creds_provider *p, aws_creds_cb *cb, void *data, struct cg_err *err)
{
    if (p == NULL || cb == NULL) {
        return cg_err_set(err, CG_EINVAL, "no credentials provider");
    }
    if (p->dead) {
        return cg_err_set(err, CG_ECANCELED, "AWS credentials provider is shut down");
    }
    struct waiter *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return cg_err_set(err, CG_ENOMEM, "out of memory");
    }
    w->cb = cb;
    w->data = data;
    struct waiter **prev_tail = p->tail;
    *p->tail = w;
    p->tail = &w->next;
    if (p->fetch != NULL || p->kick_pending) {
        return 0;
    }
    /* even a cached answer goes through the loop: cb never runs inside this call */
    int rc = cg_http_after(p->h, 0, kick, p);
    if (rc < 0) {
        *prev_tail = NULL;
        p->tail = prev_tail;
        free(w);
        return cg_err_set(err, rc, "cannot look up AWS credentials: %s", cg_errc_str(rc));
    }
    p->kick_pending = 1;
    p->busy++;
    return 0;
}
