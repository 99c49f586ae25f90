/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Pure helpers of the tiny-pv guest; see tinypv.h. */
#include "tinypv.h"

size_t tp_strlen(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    return n;
}

int tp_streq(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

struct out_buf {
    char *buf;
    size_t cap;
    size_t len;
};

static void put_char(struct out_buf *out, char c)
{
    /* Keep one byte for the terminating NUL. */
    if (out->len + 1 < out->cap)
        out->buf[out->len++] = c;
}

static void put_str(struct out_buf *out, const char *s)
{
    if (s == NULL)
        s = "(null)";
    while (*s != '\0')
        put_char(out, *s++);
}

static void put_unsigned(struct out_buf *out, uint64_t value, unsigned base)
{
    char digits[24];
    size_t n = 0;
    do {
        unsigned d = (unsigned)(value % base);
        digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        value /= base;
    } while (value != 0);
    while (n > 0)
        put_char(out, digits[--n]);
}

size_t tp_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    struct out_buf out = { buf, cap, 0 };
    while (*fmt != '\0') {
        if (*fmt != '%') {
            put_char(&out, *fmt++);
            continue;
        }
        fmt++;
        int longs = 0;
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 's':
            put_str(&out, va_arg(ap, const char *));
            break;
        case 'c':
            put_char(&out, (char)va_arg(ap, int));
            break;
        case 'd': {
            int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0) {
                put_char(&out, '-');
                put_unsigned(&out, (uint64_t)0 - (uint64_t)v, 10);
            } else {
                put_unsigned(&out, (uint64_t)v, 10);
            }
            break;
        }
        case 'u':
            put_unsigned(&out, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10);
            break;
        case 'x':
            put_unsigned(&out, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16);
            break;
        case 'p':
            put_str(&out, "0x");
            put_unsigned(&out, (uint64_t)(uintptr_t)va_arg(ap, void *), 16);
            break;
        case '%':
            put_char(&out, '%');
            break;
        case '\0':
            /* A lone '%' at the end: print it and stop. */
            put_char(&out, '%');
            fmt--;
            break;
        default:
            /* Unknown conversion: echo it so the mistake is visible. */
            put_char(&out, '%');
            put_char(&out, *fmt);
            break;
        }
        fmt++;
    }
    if (cap > 0)
        buf[out.len] = '\0';
    return out.len;
}

size_t tp_snprintf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = tp_vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

int tp_cmdline_has_flag(const char *cmdline, const char *flag)
{
    size_t flag_len = tp_strlen(flag);
    if (flag_len == 0)
        return 0;
    const char *p = cmdline;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *word = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        size_t word_len = (size_t)(p - word);
        if (word_len == flag_len) {
            size_t i = 0;
            while (i < flag_len && word[i] == flag[i])
                i++;
            if (i == flag_len)
                return 1;
        }
    }
    return 0;
}

enum tp_action tp_cmdline_action(const char *cmdline)
{
    if (tp_cmdline_has_flag(cmdline, "tinypv.block"))
        return TP_ACTION_BLOCK;
    if (tp_cmdline_has_flag(cmdline, "tinypv.crash"))
        return TP_ACTION_CRASH;
    if (tp_cmdline_has_flag(cmdline, "tinypv.reboot"))
        return TP_ACTION_REBOOT;
    return TP_ACTION_POWEROFF;
}

/* Whether va lies in [lo, virt_base + nr_pages pages), computed without overflow. */
static int in_guest_mapping(uint64_t va, uint64_t lo, uint64_t virt_base, uint64_t nr_pages)
{
    if (va < lo || va < virt_base)
        return 0;
    return ((va - virt_base) >> XEN_PAGE_SHIFT) < nr_pages;
}

uint32_t tp_check_start_info(const struct start_info *si, uint64_t virt_base, uint64_t image_end)
{
    static const char magic[] = "xen-3.0-x86_64";
    uint32_t problems = 0;

    for (size_t i = 0; i + 1 < sizeof(magic); i++) {
        if (si->magic[i] != magic[i]) {
            problems |= TP_SI_BAD_MAGIC;
            break;
        }
    }
    if (si->nr_pages == 0)
        problems |= TP_SI_NO_PAGES;
    if (si->shared_info == 0 || (si->shared_info & (XEN_PAGE_SIZE - 1)) != 0)
        problems |= TP_SI_NO_SHARED_INFO;
    if (si->console_mfn == 0 || si->console_evtchn == 0)
        problems |= TP_SI_NO_CONSOLE;
    if (si->store_mfn == 0 || si->store_evtchn == 0)
        problems |= TP_SI_NO_STORE;
    if ((si->pt_base & (XEN_PAGE_SIZE - 1)) != 0 ||
        !in_guest_mapping(si->pt_base, image_end, virt_base, si->nr_pages))
        problems |= TP_SI_BAD_PT_BASE;
    if (si->nr_pt_frames == 0)
        problems |= TP_SI_NO_PT_FRAMES;
    if ((si->mfn_list & 7) != 0 || !in_guest_mapping(si->mfn_list, image_end, virt_base, si->nr_pages))
        problems |= TP_SI_BAD_MFN_LIST;

    int terminated = 0;
    for (size_t i = 0; i < sizeof(si->cmd_line); i++) {
        if (si->cmd_line[i] == '\0') {
            terminated = 1;
            break;
        }
    }
    if (!terminated)
        problems |= TP_SI_CMDLINE_UNTERMINATED;
    return problems;
}

size_t tp_describe_start_info_problems(uint32_t mask, char *buf, size_t cap)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        { TP_SI_BAD_MAGIC, "bad-magic" },
        { TP_SI_NO_PAGES, "no-pages" },
        { TP_SI_NO_CONSOLE, "no-console" },
        { TP_SI_NO_STORE, "no-store" },
        { TP_SI_BAD_PT_BASE, "bad-pt-base" },
        { TP_SI_NO_PT_FRAMES, "no-pt-frames" },
        { TP_SI_BAD_MFN_LIST, "bad-mfn-list" },
        { TP_SI_CMDLINE_UNTERMINATED, "cmdline-unterminated" },
        { TP_SI_NO_SHARED_INFO, "no-shared-info" },
    };
    struct out_buf out = { buf, cap, 0 };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((mask & names[i].bit) == 0)
            continue;
        if (out.len > 0)
            put_char(&out, ' ');
        put_str(&out, names[i].name);
    }
    if (cap > 0)
        buf[out.len] = '\0';
    return out.len;
}

uint32_t tp_ring_write(char *ring, uint32_t size, uint32_t prod, uint32_t cons, const void *src, uint32_t len)
{
    const char *bytes = src;
    uint32_t used = prod - cons;
    if (used > size)
        return 0; /* indices corrupt: the peer is misbehaving */
    uint32_t space = size - used;
    uint32_t n = len < space ? len : space;
    for (uint32_t i = 0; i < n; i++)
        ring[(prod + i) & (size - 1)] = bytes[i];
    return n;
}

uint32_t tp_ring_read(const char *ring, uint32_t size, uint32_t prod, uint32_t cons, void *dst, uint32_t len)
{
    char *bytes = dst;
    uint32_t avail = prod - cons;
    if (avail > size)
        return 0;
    uint32_t n = len < avail ? len : avail;
    for (uint32_t i = 0; i < n; i++)
        bytes[i] = ring[(cons + i) & (size - 1)];
    return n;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t tp_xs_encode(uint8_t *out, size_t cap, uint32_t type, uint32_t req_id, const void *payload, uint32_t payload_len)
{
    if (payload_len > XENSTORE_PAYLOAD_MAX || cap < TP_XS_HEADER_SIZE ||
        cap - TP_XS_HEADER_SIZE < payload_len)
        return 0;
    put_le32(out, type);
    put_le32(out + 4, req_id);
    put_le32(out + 8, 0); /* no transaction */
    put_le32(out + 12, payload_len);
    const uint8_t *bytes = payload;
    for (uint32_t i = 0; i < payload_len; i++)
        out[TP_XS_HEADER_SIZE + i] = bytes[i];
    return TP_XS_HEADER_SIZE + payload_len;
}

size_t tp_xs_payload(char *out, size_t cap, const char *first, const char *second, int terminate_last)
{
    size_t first_len = tp_strlen(first) + 1;
    size_t second_len = second == NULL ? 0 : tp_strlen(second) + (terminate_last ? 1 : 0);
    if (second == NULL && !terminate_last)
        first_len--;
    if (first_len + second_len > cap)
        return 0;
    for (size_t i = 0; i < first_len; i++)
        out[i] = first[i];
    for (size_t i = 0; i < second_len; i++)
        out[first_len + i] = second[i];
    return first_len + second_len;
}

int tp_xs_parse_header(const uint8_t *bytes, struct tp_xs_header *header)
{
    header->type = get_le32(bytes);
    header->req_id = get_le32(bytes + 4);
    header->tx_id = get_le32(bytes + 8);
    header->len = get_le32(bytes + 12);
    return header->len > XENSTORE_PAYLOAD_MAX ? -1 : 0;
}

int tp_xs_split_watch_event(const char *payload, uint32_t len, const char **path, const char **token)
{
    uint32_t first_nul = 0;
    while (first_nul < len && payload[first_nul] != '\0')
        first_nul++;
    if (first_nul >= len)
        return -1;
    uint32_t second_nul = first_nul + 1;
    while (second_nul < len && payload[second_nul] != '\0')
        second_nul++;
    if (second_nul >= len)
        return -1;
    *path = payload;
    *token = payload + first_nul + 1;
    return 0;
}
