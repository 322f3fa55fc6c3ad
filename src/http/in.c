/* The incoming half of an HTTP connection: the read buffer, llhttp and its callbacks
 * (see http.h for the model). */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { K_NONE, K_URL, K_FIELD, K_VALUE };

static hin *IN(llhttp_t *p) { return p->data; }

static uint32_t off_of(hin *in, const char *at) { return (uint32_t)(at - in->buf); }

/* A span continues the previous one when it is of the same kind and starts where that
 * one ended (llhttp splits a span at the end of each execute's data). */
static void extend(hspan *s, uint32_t off, size_t len)
{
    if (s->len == 0)
        s->off = off;
    s->len += (uint32_t)len;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    hin *in = IN(p);
    extend(&in->url, off_of(in, at), len);
    in->last = K_URL;
    return 0;
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    hin *in = IN(p);
    if (in->head_done)
        return 0; /* a trailer: not kept */
    if (in->last != K_FIELD) {
        if (in->nh == in->caph) {
            int nc = in->caph * 2;
            hhdr *h = in->h == in->inl ? malloc((size_t)nc * sizeof *h)
                                       : realloc(in->h, (size_t)nc * sizeof *h);
            if (!h)
                return HPE_USER;
            if (in->h == in->inl)
                memcpy(h, in->inl, sizeof in->inl);
            in->h = h;
            in->caph = nc;
        }
        memset(&in->h[in->nh++], 0, sizeof(hhdr));
        in->last = K_FIELD;
    }
    extend(&in->h[in->nh - 1].n, off_of(in, at), len);
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    hin *in = IN(p);
    if (in->head_done || in->nh == 0)
        return 0;
    extend(&in->h[in->nh - 1].v, off_of(in, at), len);
    in->last = K_VALUE;
    return 0;
}

/* NUL-terminate the head's strings in place: each span is followed by a byte of the
 * head that the parser has consumed (' ', ':', CR or LF). */
static void finish_head(hin *in)
{
    char *b = in->buf;
    for (int i = 0; i < in->nh; i++) {
        hhdr *h = &in->h[i];
        h->name = b + h->n.off;
        b[h->n.off + h->n.len] = 0;
        uint32_t vl = h->v.len;
        while (vl && (b[h->v.off + vl - 1] == ' ' || b[h->v.off + vl - 1] == '\t'))
            vl--;
        if (h->v.len) {
            h->value = b + h->v.off;
            b[h->v.off + vl] = 0;
        } else {
            h->value = "";
        }
    }
    in->target = "";
    if (in->url.len) {
        b[in->url.off + in->url.len] = 0;
        in->target = b + in->url.off;
    }
}

static int on_headers_complete(llhttp_t *p)
{
    hin *in = IN(p);
    in->head_done = true;
    in->head_end = (size_t)-1; /* set from the pause position (np__hin_parse) */
    finish_head(in);
    if (in->head_only)
        return 1; /* a response to HEAD: no body whatever the headers say */
    /* With a body, pause here so the head is handed over before the body is parsed;
     * without, run on to the end of the message (which pauses). */
    if ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) ||
        (p->type == HTTP_RESPONSE && llhttp_message_needs_eof(p)))
        return HPE_PAUSED;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    hin *in = IN(p);
    in->body = at;
    in->body_len = len;
    in->body_total += (int64_t)len;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    hin *in = IN(p);
    in->msg_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int np__hin_init(hin *in, int fd, llhttp_type_t type, size_t cap, size_t max_head)
{
    memset(in, 0, sizeof *in);
    in->fd = fd;
    in->cap = cap;
    in->max_head = max_head;
    if (!(in->buf = malloc(cap)))
        return -1;
    in->h = in->inl;
    in->caph = (int)(sizeof in->inl / sizeof in->inl[0]);
    llhttp_init(&in->p, type, &settings);
    in->p.data = in;
    return 0;
}

void np__hin_free(hin *in)
{
    free(in->buf);
    if (in->h != in->inl)
        free(in->h);
    in->buf = NULL;
    in->h = NULL;
}

void np__hin_next(hin *in)
{
    if (in->pos == in->end)
        in->pos = in->end = 0;
    in->head_start = in->pos;
    in->head_end = 0;
    in->url = (hspan){0, 0};
    in->nh = 0;
    in->last = K_NONE;
    in->head_done = in->msg_done = in->upgrade = false;
    in->body = NULL;
    in->body_len = 0;
    in->body_total = 0;
}

int np__hin_parse(hin *in)
{
    if (in->err)
        return -1;
    if (in->msg_done || in->body_len)
        return 0;
    bool had_head = in->head_done;
    const char *at = in->buf + in->pos;
    llhttp_errno_t e = llhttp_execute(&in->p, at, in->end - in->pos);
    if (e == HPE_OK) {
        in->pos = in->end;
    } else if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        in->pos = (size_t)(llhttp_get_error_pos(&in->p) - in->buf);
        if (e == HPE_PAUSED) {
            llhttp_resume(&in->p);
        } else {
            in->upgrade = in->msg_done = true; /* what follows is not HTTP: stop there */
        }
    } else {
        in->err = (int)e;
        return -1;
    }
    if (!had_head && in->head_done) {
        /* the head ends at the pause after on_headers_complete, or where the body or
         * the message's end paused the parser */
        in->head_end = in->body_len ? (size_t)(in->body - in->buf) : in->pos;
    }
    return 0;
}

/* Make room at the end of the buffer. A head being parsed keeps its bytes (moved to the
 * start, its spans with them); a complete head stays where it is (its strings are
 * handed out) and only the body bytes after it are dropped. */
static int make_room(hin *in)
{
    size_t keep = in->head_done ? in->head_end : in->head_start;
    size_t from = in->head_done ? in->pos : in->head_start;
    if (in->pos == in->end && in->head_done) {
        in->pos = in->end = keep;
        return 0;
    }
    if (in->end < in->cap)
        return 0;
    size_t to = in->head_done ? keep : 0;
    if (from > to) {
        size_t shift = from - to;
        memmove(in->buf + to, in->buf + from, in->end - from);
        in->end -= shift;
        in->pos -= shift;
        if (!in->head_done) {
            in->head_start = 0;
            in->url.off = in->url.len ? in->url.off - (uint32_t)shift : 0;
            for (int i = 0; i < in->nh; i++) {
                if (in->h[i].n.len)
                    in->h[i].n.off -= (uint32_t)shift;
                if (in->h[i].v.len)
                    in->h[i].v.off -= (uint32_t)shift;
            }
        }
    }
    if (in->end < in->cap)
        return 0;
    /* full: grow while a head is within its limit (or the head's strings fill it) */
    if (!in->head_done && in->end - in->head_start >= in->max_head) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t nc = in->cap * 2;
    char *nb = realloc(in->buf, nc);
    if (!nb)
        return -1;
    /* the head's strings move with the buffer (their offsets stay) */
    if (in->head_done) {
        if (in->url.len)
            in->target = nb + in->url.off;
        for (int i = 0; i < in->nh; i++) {
            in->h[i].name = nb + in->h[i].n.off;
            if (in->h[i].v.len)
                in->h[i].value = nb + in->h[i].v.off;
        }
    }
    in->buf = nb;
    in->cap = nc;
    return 0;
}

ssize_t np__hin_fill(hin *in)
{
    if (make_room(in) < 0)
        return -1;
    ssize_t n = in->tls ? np_tls_read(in->tls, in->buf + in->end, in->cap - in->end)
                        : np_read(in->fd, in->buf + in->end, in->cap - in->end);
    if (n > 0)
        in->end += (size_t)n;
    return n;
}

const char *np__hin_header(const hin *in, const char *name)
{
    for (int i = 0; i < in->nh; i++)
        if (np__http_eq(in->h[i].name, name))
            return in->h[i].value;
    return NULL;
}

size_t np__hin_take(hin *in, void *buf, size_t len)
{
    for (;;) {
        if (in->body_len) {
            size_t n = in->body_len < len ? in->body_len : len;
            memcpy(buf, in->body, n);
            in->body += n;
            in->body_len -= n;
            return n;
        }
        if (in->msg_done || in->err)
            return 0;
        /* parse on, even with nothing buffered: the end of a message may need no byte */
        size_t pos = in->pos;
        if (np__hin_parse(in) < 0 || (!in->body_len && !in->msg_done && in->pos == pos))
            return 0;
    }
}
