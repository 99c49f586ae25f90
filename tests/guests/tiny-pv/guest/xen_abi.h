/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The slice of Xen's public x86_64 PV ABI that tiny-pv uses, written from
 * the layouts in xen/include/public (xen.h, sched.h, event_channel.h,
 * io/console.h, io/xs_wire.h). Offsets are pinned with static asserts so a
 * typo cannot silently shift a field.
 */
#ifndef TINYPV_XEN_ABI_H
#define TINYPV_XEN_ABI_H

#include <stddef.h>
#include <stdint.h>

#define XEN_PAGE_SHIFT 12
#define XEN_PAGE_SIZE (1UL << XEN_PAGE_SHIFT)

/* Hypercall numbers (xen.h). Each has a 32-byte stub in the hypercall page. */
#define HYPERCALL_SET_CALLBACKS 4
#define HYPERCALL_UPDATE_VA_MAPPING 14
#define HYPERCALL_CONSOLE_IO 18
#define HYPERCALL_IRET 23
#define HYPERCALL_SCHED_OP 29
#define HYPERCALL_EVENT_CHANNEL_OP 32

#define CONSOLEIO_WRITE 0

#define SCHEDOP_YIELD 0
#define SCHEDOP_SHUTDOWN 2
#define SCHEDOP_POLL 3

#define SHUTDOWN_POWEROFF 0
#define SHUTDOWN_REBOOT 1
#define SHUTDOWN_CRASH 3

#define EVTCHNOP_SEND 4

#define UVMF_INVLPG 2

/* Present | writable | user | accessed | dirty. Xen adds the guest-kernel bit. */
#define PTE_KERNEL_RW 0x67UL

/* The hypervisor's read-only machine-to-phys table (arch-x86/xen-x86_64.h). */
#define MACH2PHYS_VIRT_START 0xFFFF800000000000UL

/* Xen guarantees this much mapped slack after the bootstrap page tables. */
#define INITIAL_MAPPING_SLACK (512UL * 1024)

struct start_info {
    char magic[32];
    uint64_t nr_pages;
    uint64_t shared_info; /* machine address */
    uint32_t flags;
    uint64_t store_mfn;
    uint32_t store_evtchn;
    uint64_t console_mfn;
    uint32_t console_evtchn;
    uint64_t pt_base; /* virtual address of the L4 table */
    uint64_t nr_pt_frames;
    uint64_t mfn_list; /* virtual address of the p2m array */
    uint64_t mod_start;
    uint64_t mod_len;
    char cmd_line[1024];
    uint64_t first_p2m_pfn;
    uint64_t nr_p2m_frames;
};
_Static_assert(offsetof(struct start_info, nr_pages) == 32, "start_info.nr_pages");
_Static_assert(offsetof(struct start_info, flags) == 48, "start_info.flags");
_Static_assert(offsetof(struct start_info, store_mfn) == 56, "start_info.store_mfn");
_Static_assert(offsetof(struct start_info, store_evtchn) == 64, "start_info.store_evtchn");
_Static_assert(offsetof(struct start_info, console_mfn) == 72, "start_info.console.domU.mfn");
_Static_assert(offsetof(struct start_info, console_evtchn) == 80, "start_info.console.domU.evtchn");
_Static_assert(offsetof(struct start_info, pt_base) == 88, "start_info.pt_base");
_Static_assert(offsetof(struct start_info, mfn_list) == 104, "start_info.mfn_list");
_Static_assert(offsetof(struct start_info, cmd_line) == 128, "start_info.cmd_line");
_Static_assert(sizeof(struct start_info) == 1168, "start_info size");

struct vcpu_time_info {
    uint32_t version;
    uint32_t pad0;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags;
    uint8_t pad1[2];
};
_Static_assert(sizeof(struct vcpu_time_info) == 32, "vcpu_time_info size");

struct vcpu_info {
    uint8_t evtchn_upcall_pending;
    uint8_t evtchn_upcall_mask;
    uint64_t evtchn_pending_sel;
    uint64_t arch_cr2;
    uint64_t arch_pad;
    struct vcpu_time_info time;
};
_Static_assert(sizeof(struct vcpu_info) == 64, "vcpu_info size");

/* Only the head of shared_info: the legacy vcpu_info array and the 2-level event bitmaps. */
struct shared_info {
    struct vcpu_info vcpu_info[32];
    uint64_t evtchn_pending[64];
    uint64_t evtchn_mask[64];
};
_Static_assert(offsetof(struct shared_info, evtchn_pending) == 2048, "shared_info.evtchn_pending");

struct sched_poll {
    uint32_t *ports;
    uint32_t nr_ports;
    uint64_t timeout; /* absolute system time in ns, 0 = none */
};
_Static_assert(sizeof(struct sched_poll) == 24, "sched_poll size");

struct sched_shutdown {
    uint32_t reason;
};

struct evtchn_send {
    uint32_t port;
};

#define XENCONS_IN_SIZE 1024
#define XENCONS_OUT_SIZE 2048
struct xencons_interface {
    char in[XENCONS_IN_SIZE];
    char out[XENCONS_OUT_SIZE];
    uint32_t in_cons, in_prod;
    uint32_t out_cons, out_prod;
};
_Static_assert(offsetof(struct xencons_interface, out_cons) == 3080, "xencons out_cons");

#define XENSTORE_RING_SIZE 1024
struct xenstore_domain_interface {
    char req[XENSTORE_RING_SIZE];
    char rsp[XENSTORE_RING_SIZE];
    uint32_t req_cons, req_prod;
    uint32_t rsp_cons, rsp_prod;
    uint32_t server_features;
    uint32_t connection;
    uint32_t error;
};
_Static_assert(offsetof(struct xenstore_domain_interface, rsp_prod) == 2060, "xenstore rsp_prod");

/* xs_wire.h message types used here. */
#define XS_READ 2
#define XS_WATCH 4
#define XS_TRANSACTION_START 6
#define XS_WRITE 11
#define XS_WATCH_EVENT 15
#define XS_ERROR 16
#define XENSTORE_PAYLOAD_MAX 4096

#endif
