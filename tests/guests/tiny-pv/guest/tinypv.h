/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Pure helpers of the tiny-pv guest: no hypercalls, no globals. They are
 * compiled twice, into the guest and into a host static library so the Rust
 * tests can exercise them (tests/host_helpers.rs).
 */
#ifndef TINYPV_H
#define TINYPV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "xen_abi.h"

size_t tp_strlen(const char *s);
int tp_streq(const char *a, const char *b);

/*
 * snprintf subset: %s %c %d %u %x with optional l/ll, %p, %%. Always
 * NUL-terminates when cap > 0; returns the number of bytes written (not
 * counting the NUL), truncating silently.
 */
size_t tp_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);
size_t tp_snprintf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* What the command line asks tiny-pv to do once it has reported. */
enum tp_action {
    TP_ACTION_POWEROFF = 0,
    TP_ACTION_REBOOT = 1,
    TP_ACTION_CRASH = 2,
    TP_ACTION_BLOCK = 3,
};
/* Whether `flag` appears as a whole space-separated word of `cmdline`. */
int tp_cmdline_has_flag(const char *cmdline, const char *flag);
/* tinypv.block wins over tinypv.crash, which wins over tinypv.reboot. */
enum tp_action tp_cmdline_action(const char *cmdline);

/* Problems tp_check_start_info can find, as bits of its result. */
#define TP_SI_BAD_MAGIC (1u << 0)
#define TP_SI_NO_PAGES (1u << 1)
#define TP_SI_NO_CONSOLE (1u << 2)
#define TP_SI_NO_STORE (1u << 3)
#define TP_SI_BAD_PT_BASE (1u << 4)
#define TP_SI_NO_PT_FRAMES (1u << 5)
#define TP_SI_BAD_MFN_LIST (1u << 6)
#define TP_SI_CMDLINE_UNTERMINATED (1u << 7)
#define TP_SI_NO_SHARED_INFO (1u << 8)
/*
 * Checks a start_info the way the guest needs it: magic "xen-3.0-x86_64...",
 * pages, console and store rings, the page-table base and p2m list inside the
 * mapping that starts at virt_base and page aligned. `image_end` is the end
 * of the kernel image: bootstrap structures lie after it. Returns 0 if sane.
 */
uint32_t tp_check_start_info(const struct start_info *si, uint64_t virt_base, uint64_t image_end);
/* Names the problems in `mask` as a space-separated list into buf. */
size_t tp_describe_start_info_problems(uint32_t mask, char *buf, size_t cap);

/*
 * Ring arithmetic of the console and xenstore rings: free-running 32-bit
 * indices, power-of-two sizes. Both return how many bytes they copied.
 */
uint32_t tp_ring_write(char *ring, uint32_t size, uint32_t prod, uint32_t cons, const void *src, uint32_t len);
uint32_t tp_ring_read(const char *ring, uint32_t size, uint32_t prod, uint32_t cons, void *dst, uint32_t len);

/* xenstore wire messages (xs_wire.h): a 16-byte header then the payload. */
struct tp_xs_header {
    uint32_t type;
    uint32_t req_id;
    uint32_t tx_id;
    uint32_t len;
};
#define TP_XS_HEADER_SIZE 16
/* Encodes a message into out; returns its total size, or 0 if it does not fit. */
size_t tp_xs_encode(uint8_t *out, size_t cap, uint32_t type, uint32_t req_id, const void *payload, uint32_t payload_len);
/* Builds a payload of NUL-separated strings ("a\0b\0"); `terminate_last` is 0 for XS_WRITE values. */
size_t tp_xs_payload(char *out, size_t cap, const char *first, const char *second, int terminate_last);
/* Decodes a header; returns 0, or -1 when the length exceeds XENSTORE_PAYLOAD_MAX. */
int tp_xs_parse_header(const uint8_t *bytes, struct tp_xs_header *header);
/* Splits an XS_WATCH_EVENT payload "path\0token\0"; returns 0, or -1 if malformed. */
int tp_xs_split_watch_event(const char *payload, uint32_t len, const char **path, const char **token);

#endif
