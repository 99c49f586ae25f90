/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * tiny-pv: a minimal x86_64 PV guest for toolstack tests.
 *
 * It checks its start_info, prints TINYPV-UP and its command line on the PV
 * console ring, reads its own name from xenstore over the store ring, then
 * powers off (or reboots, crashes or blocks, as the command line asks).
 * Everything is also echoed through HYPERVISOR_console_io, which shows in
 * Xen's own log when it runs with guest_loglvl=all.
 *
 * Waiting never unmasks event delivery: tiny-pv keeps vcpu_info's upcall mask
 * set and sleeps in SCHEDOP_poll on its ports, clearing their pending bits
 * itself. (SCHEDOP_block would unmask events and need a working upcall
 * handler that clears them.)
 */
#include "tinypv.h"

extern char hypercall_page[];
extern char __virt_base[];
extern char __image_end[];
extern void tinypv_event_callback(void);
extern void tinypv_failsafe_callback(void);

void tinypv_main(const struct start_info *si) __attribute__((noreturn));
void tinypv_failsafe(void) __attribute__((noreturn));
void tinypv_fatal_return(void) __attribute__((noreturn));

#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL
/* Sleep in slices so a missed wake-up costs at most this long. */
#define WAIT_SLICE_NS (10 * NS_PER_MS)
/* Bound on wait rounds, in case the clock does not advance. */
#define WAIT_ROUND_LIMIT 200000
#define RING_TIMEOUT_NS (10 * NS_PER_S)
#define DRAIN_TIMEOUT_NS (2 * NS_PER_S)

#define PAGE_ALIGNED __attribute__((aligned(XEN_PAGE_SIZE), section(".bss.page_aligned")))
/* Pages whose mappings we replace with a Xen page (shared_info, fallback rings). */
static char shared_info_page[XEN_PAGE_SIZE] PAGE_ALIGNED;
static char console_fallback_page[XEN_PAGE_SIZE] PAGE_ALIGNED;
static char store_fallback_page[XEN_PAGE_SIZE] PAGE_ALIGNED;

static const struct start_info *start;
static volatile struct shared_info *shared;
static volatile struct xencons_interface *console;
static volatile struct xenstore_domain_interface *store;
static uint32_t console_port;
static uint32_t store_port;
static uint32_t last_req_id;
/* tinypv.remap-rings: take the fallback path of map_ring even when the M2P path works. */
static int force_remap;
/* What the first HYPERVISOR_console_io returned: -EPERM (-1) on release Xen builds for a domU. */
static long console_io_first_rc = 1;

/* ---- hypercalls ---------------------------------------------------------- */

static long hypercall(unsigned int nr, uint64_t a1, uint64_t a2, uint64_t a3)
{
    register uint64_t rdi __asm__("rdi") = a1;
    register uint64_t rsi __asm__("rsi") = a2;
    register uint64_t rdx __asm__("rdx") = a3;
    register uint64_t r10 __asm__("r10") = 0;
    register uint64_t r8 __asm__("r8") = 0;
    void *entry = hypercall_page + nr * 32;
    long ret;
    /* Debug Xen builds scribble over argument registers: treat all as clobbered. */
    __asm__ volatile("call *%[entry]"
                     : "=a"(ret), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10), "+r"(r8)
                     : [entry] "r"(entry)
                     : "memory", "rcx", "r11");
    return ret;
}

static void console_io_write(const char *s, size_t len)
{
    long rc = hypercall(HYPERCALL_CONSOLE_IO, CONSOLEIO_WRITE, len, (uint64_t)(uintptr_t)s);
    if (console_io_first_rc == 1)
        console_io_first_rc = rc;
}

static void notify(uint32_t port)
{
    struct evtchn_send send = { .port = port };
    hypercall(HYPERCALL_EVENT_CHANNEL_OP, EVTCHNOP_SEND, (uint64_t)(uintptr_t)&send, 0);
}

static void yield(void)
{
    hypercall(HYPERCALL_SCHED_OP, SCHEDOP_YIELD, 0, 0);
}

static void poll_ports(uint32_t *ports, uint32_t nr_ports, uint64_t deadline_ns)
{
    struct sched_poll poll = { .ports = ports, .nr_ports = nr_ports, .timeout = deadline_ns };
    hypercall(HYPERCALL_SCHED_OP, SCHEDOP_POLL, (uint64_t)(uintptr_t)&poll, 0);
}

static long map_machine_page(void *va, uint64_t maddr)
{
    return hypercall(HYPERCALL_UPDATE_VA_MAPPING, (uint64_t)(uintptr_t)va, maddr | PTE_KERNEL_RW,
                     UVMF_INVLPG);
}

static void barrier(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* ---- output ------------------------------------------------------------- */

static int console_has_space(void)
{
    return console->out_prod - console->out_cons < XENCONS_OUT_SIZE;
}

static int console_drained(void)
{
    return console->out_prod == console->out_cons;
}

static int wait_for(int (*ready)(void), uint32_t port, uint64_t timeout_ns);

static void console_ring_write(const char *s, size_t len)
{
    while (len > 0) {
        uint32_t prod = console->out_prod;
        barrier();
        uint32_t written = tp_ring_write((char *)console->out, XENCONS_OUT_SIZE, prod,
                                         console->out_cons, s, (uint32_t)len);
        if (written == 0) {
            notify(console_port);
            if (!wait_for(console_has_space, console_port, RING_TIMEOUT_NS)) {
                static const char lost[] = "tinypv: console ring stuck, output dropped\n";
                console_io_write(lost, sizeof(lost) - 1);
                return;
            }
            continue;
        }
        barrier();
        console->out_prod = prod + written;
        s += written;
        len -= written;
    }
    notify(console_port);
}

static void print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void print(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    size_t len = tp_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    console_io_write(line, len);
    if (console != NULL)
        console_ring_write(line, len);
}

/* ---- time and waiting --------------------------------------------------- */

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

/* Xen system time in ns, from vcpu 0's time info (the pvclock formula). */
static uint64_t now_ns(void)
{
    if (shared == NULL)
        return 0;
    volatile struct vcpu_time_info *t = &shared->vcpu_info[0].time;
    uint32_t version;
    uint64_t tsc_timestamp, system_time, tsc;
    uint32_t mul;
    int8_t shift;
    do {
        version = t->version;
        barrier();
        tsc_timestamp = t->tsc_timestamp;
        system_time = t->system_time;
        mul = t->tsc_to_system_mul;
        shift = t->tsc_shift;
        tsc = rdtsc();
        barrier();
    } while ((version & 1) != 0 || version != t->version);
    /*
     * The TSC can read slightly behind the record's timestamp (another
     * pcpu's TSC under emulation): scale the magnitude and keep the sign
     * rather than clamp, so time keeps moving.
     */
    int behind = tsc < tsc_timestamp;
    uint64_t delta = behind ? tsc_timestamp - tsc : tsc - tsc_timestamp;
    if (shift < 0)
        delta >>= -shift;
    else
        delta <<= shift;
    uint64_t scaled = (uint64_t)(((unsigned __int128)delta * mul) >> 32);
    return behind ? system_time - scaled : system_time + scaled;
}

static void clear_pending(uint32_t port)
{
    if (shared != NULL)
        __atomic_fetch_and(&shared->evtchn_pending[port / 64], ~(1ULL << (port % 64)),
                           __ATOMIC_SEQ_CST);
}

/*
 * Waits until ready() holds, sleeping on `port` between checks. The pending
 * bit is cleared before each check, so an event that arrives after the check
 * wakes the poll at once. Returns whether ready() held in time.
 */
static int wait_for(int (*ready)(void), uint32_t port, uint64_t timeout_ns)
{
    uint64_t deadline = now_ns() + timeout_ns;
    for (unsigned round = 0; round < WAIT_ROUND_LIMIT; round++) {
        clear_pending(port);
        if (ready())
            return 1;
        uint64_t now = now_ns();
        if (shared == NULL) {
            yield();
            continue;
        }
        if (now >= deadline)
            return 0;
        uint64_t slice_end = now + WAIT_SLICE_NS;
        poll_ports(&port, 1, slice_end < deadline ? slice_end : deadline);
    }
    return ready();
}

/* ---- shutdown ----------------------------------------------------------- */

static void __attribute__((noreturn)) shutdown(uint32_t reason)
{
    struct sched_shutdown request = { .reason = reason };
    for (;;) {
        hypercall(HYPERCALL_SCHED_OP, SCHEDOP_SHUTDOWN, (uint64_t)(uintptr_t)&request, 0);
        /* Shutdown takes effect when Xen next deschedules us. */
        yield();
    }
}

static void __attribute__((noreturn)) fail(const char *why)
{
    print("TINYPV-FAIL %s\n", why);
    if (console != NULL)
        wait_for(console_drained, console_port, DRAIN_TIMEOUT_NS);
    shutdown(SHUTDOWN_CRASH);
}

void tinypv_failsafe(void)
{
    fail("failsafe callback: Xen could not load a segment register");
}

void tinypv_fatal_return(void)
{
    fail("tinypv_main returned");
}

/* ---- finding the ring pages --------------------------------------------- */

/*
 * Finds the virtual address of a ring page given by machine frame: the M2P
 * table gives its pfn, the initial mapping puts pfn N at virt_base + N pages.
 * The p2m list must agree, and the page must lie in the part of the initial
 * mapping Xen guarantees (up to 512 KiB past the bootstrap page tables) and
 * not be a page-table page. Otherwise map the frame over `fallback`.
 * Describes what it did in `report` (a console line).
 */
static volatile void *map_ring(const char *what, uint64_t mfn, char *fallback, char *report,
                              size_t report_cap)
{
    const uint64_t *m2p = (const uint64_t *)MACH2PHYS_VIRT_START;
    const uint64_t *p2m = (const uint64_t *)(uintptr_t)start->mfn_list;
    uint64_t virt_base = (uint64_t)(uintptr_t)__virt_base;
    uint64_t pfn = m2p[mfn];
    uint64_t va = virt_base + (pfn << XEN_PAGE_SHIFT);
    uint64_t pt_end = start->pt_base + (start->nr_pt_frames << XEN_PAGE_SHIFT);
    uint64_t mapped_end = pt_end + INITIAL_MAPPING_SLACK;
    const char *problem = NULL;

    if (pfn >= start->nr_pages)
        problem = "pfn-out-of-range";
    else if (p2m[pfn] != mfn)
        problem = "p2m-disagrees";
    else if (va < (uint64_t)(uintptr_t)__image_end || va + XEN_PAGE_SIZE > mapped_end)
        problem = "outside-initial-mapping";
    else if (va >= start->pt_base && va < pt_end)
        problem = "is-a-page-table";
    else if (force_remap)
        problem = "forced";

    if (problem == NULL) {
        tp_snprintf(report, report_cap, "TINYPV-MAP %s mfn=0x%lx pfn=0x%lx va=0x%lx via=m2p\n", what,
                    mfn, pfn, va);
        return (volatile void *)(uintptr_t)va;
    }
    long rc = map_machine_page(fallback, mfn << XEN_PAGE_SHIFT);
    tp_snprintf(report, report_cap, "TINYPV-MAP %s mfn=0x%lx pfn=0x%lx va=%p via=remap (%s) rc=%ld\n",
                what, mfn, pfn, (void *)fallback, problem, rc);
    if (rc != 0)
        return NULL;
    return fallback;
}

/* ---- xenstore ----------------------------------------------------------- */

static int store_has_space(void)
{
    return store->req_prod - store->req_cons < XENSTORE_RING_SIZE;
}

static int store_has_data(void)
{
    return store->rsp_prod != store->rsp_cons;
}

static int store_write(const uint8_t *bytes, uint32_t len)
{
    while (len > 0) {
        uint32_t prod = store->req_prod;
        barrier();
        uint32_t written =
            tp_ring_write((char *)store->req, XENSTORE_RING_SIZE, prod, store->req_cons, bytes, len);
        if (written == 0) {
            notify(store_port);
            if (!wait_for(store_has_space, store_port, RING_TIMEOUT_NS))
                return -1;
            continue;
        }
        barrier();
        store->req_prod = prod + written;
        bytes += written;
        len -= written;
    }
    notify(store_port);
    return 0;
}

static int store_read(void *dst, uint32_t len)
{
    uint8_t *bytes = dst;
    while (len > 0) {
        uint32_t cons = store->rsp_cons;
        uint32_t prod = store->rsp_prod;
        barrier();
        uint32_t got = tp_ring_read((const char *)store->rsp, XENSTORE_RING_SIZE, prod, cons, bytes, len);
        if (got == 0) {
            if (!wait_for(store_has_data, store_port, RING_TIMEOUT_NS))
                return -1;
            continue;
        }
        barrier();
        store->rsp_cons = cons + got;
        notify(store_port);
        bytes += got;
        len -= got;
    }
    return 0;
}

/* One received message; the body is NUL-terminated for convenience. */
static struct tp_xs_header reply_header;
static char reply_body[XENSTORE_PAYLOAD_MAX + 1];
static int watch_event_seen;

static int xs_receive(void)
{
    uint8_t header[TP_XS_HEADER_SIZE];
    if (store_read(header, sizeof(header)) != 0)
        return -1;
    if (tp_xs_parse_header(header, &reply_header) != 0)
        return -1;
    if (store_read(reply_body, reply_header.len) != 0)
        return -1;
    reply_body[reply_header.len] = '\0';
    return 0;
}

/*
 * Sends one request and waits for its reply in reply_header/reply_body.
 * Watch events that arrive meanwhile are noted in watch_event_seen.
 * Returns 0 on a reply of the request's type, -1 otherwise (XS_ERROR leaves
 * the error name in reply_body).
 */
static int xs_request(uint32_t type, const char *payload, size_t payload_len)
{
    static uint8_t message[TP_XS_HEADER_SIZE + 512];
    uint32_t req_id = ++last_req_id;
    size_t len = tp_xs_encode(message, sizeof(message), type, req_id, payload, (uint32_t)payload_len);
    if (len == 0) {
        tp_snprintf(reply_body, sizeof(reply_body), "request too long");
        return -1;
    }
    if (store_write(message, (uint32_t)len) != 0) {
        tp_snprintf(reply_body, sizeof(reply_body), "timed out writing the request");
        return -1;
    }
    for (;;) {
        if (xs_receive() != 0) {
            tp_snprintf(reply_body, sizeof(reply_body), "timed out or bad reply");
            return -1;
        }
        if (reply_header.type == XS_WATCH_EVENT) {
            watch_event_seen = 1;
            continue;
        }
        if (reply_header.req_id != req_id)
            continue; /* a stale reply */
        return reply_header.type == type ? 0 : -1;
    }
}

static int xs_read(const char *path)
{
    char payload[256];
    size_t len = tp_xs_payload(payload, sizeof(payload), path, NULL, 1);
    return xs_request(XS_READ, payload, len);
}

static int xs_watch(const char *path, const char *token)
{
    char payload[256];
    size_t len = tp_xs_payload(payload, sizeof(payload), path, token, 1);
    return xs_request(XS_WATCH, payload, len);
}

/* ---- blocking ----------------------------------------------------------- */

#define SHUTDOWN_WATCH_TOKEN "tinypv-control"

/*
 * Reacts to a control/shutdown request the way a PV kernel does, so that
 * `xl shutdown` / `xl reboot` work on a blocked tiny-pv.
 */
static void check_shutdown_request(void)
{
    if (xs_read("control/shutdown") != 0)
        return; /* absent: nothing requested */
    if (reply_body[0] == '\0')
        return;
    uint32_t reason;
    if (tp_streq(reply_body, "poweroff") || tp_streq(reply_body, "halt"))
        reason = SHUTDOWN_POWEROFF;
    else if (tp_streq(reply_body, "reboot"))
        reason = SHUTDOWN_REBOOT;
    else {
        print("TINYPV-SHUTDOWN-IGNORED %s\n", reply_body);
        return;
    }
    print("TINYPV-SHUTDOWN-REQUEST %s\n", reply_body);
    print("TINYPV-DONE %s\n", reply_body);
    wait_for(console_drained, console_port, DRAIN_TIMEOUT_NS);
    shutdown(reason);
}

static void __attribute__((noreturn)) block_forever(void)
{
    int watching = store != NULL && xs_watch("control/shutdown", SHUTDOWN_WATCH_TOKEN) == 0;
    if (store != NULL && !watching)
        print("TINYPV-WATCH-ERROR %s\n", reply_body);
    print("TINYPV-BLOCKING\n");
    uint32_t ports[2] = { console_port, store_port };
    for (;;) {
        clear_pending(console_port);
        clear_pending(store_port);
        if (watching && (watch_event_seen || store_has_data())) {
            if (!watch_event_seen) {
                if (xs_receive() != 0)
                    continue;
                if (reply_header.type != XS_WATCH_EVENT)
                    continue; /* nothing else is outstanding */
            }
            watch_event_seen = 0;
            check_shutdown_request();
            continue;
        }
        /* No timeout: sleep until the console or the store signals. */
        poll_ports(ports, store != NULL ? 2 : 1, 0);
    }
}

/* ---- main --------------------------------------------------------------- */

static void report_start_info(const struct start_info *si, uint32_t problems)
{
    char magic[sizeof(si->magic) + 1];
    for (size_t i = 0; i < sizeof(si->magic); i++)
        magic[i] = si->magic[i];
    magic[sizeof(si->magic)] = '\0';
    print("TINYPV-STARTINFO magic=%s nr_pages=%lu shared_info=0x%lx flags=0x%x\n", magic,
          si->nr_pages, si->shared_info, si->flags);
    print("TINYPV-STARTINFO console_mfn=0x%lx console_evtchn=%u store_mfn=0x%lx store_evtchn=%u\n",
          si->console_mfn, si->console_evtchn, si->store_mfn, si->store_evtchn);
    print("TINYPV-STARTINFO pt_base=0x%lx nr_pt_frames=%lu mfn_list=0x%lx mod_start=0x%lx mod_len=%lu\n",
          si->pt_base, si->nr_pt_frames, si->mfn_list, si->mod_start, si->mod_len);
    if (problems == 0) {
        print("TINYPV-STARTINFO-OK\n");
    } else {
        char names[256];
        tp_describe_start_info_problems(problems, names, sizeof(names));
        print("TINYPV-STARTINFO-BAD %s\n", names);
    }
}

void tinypv_main(const struct start_info *si)
{
    start = si;
    hypercall(HYPERCALL_SET_CALLBACKS, (uint64_t)(uintptr_t)tinypv_event_callback,
              (uint64_t)(uintptr_t)tinypv_failsafe_callback, 0);
    print("tinypv: entered, start_info at %p\n", (const void *)si);

    uint32_t problems = tp_check_start_info(si, (uint64_t)(uintptr_t)__virt_base,
                                            (uint64_t)(uintptr_t)__image_end);
    const uint32_t fatal = TP_SI_BAD_MAGIC | TP_SI_NO_SHARED_INFO | TP_SI_NO_CONSOLE |
                           TP_SI_BAD_MFN_LIST | TP_SI_NO_PAGES;
    if ((problems & fatal) != 0) {
        report_start_info(si, problems);
        fail("start_info unusable");
    }

    /* Bounded copy: an unterminated cmd_line is reported above, not fatal. */
    char cmdline[sizeof(si->cmd_line)];
    size_t n = 0;
    while (n + 1 < sizeof(cmdline) && si->cmd_line[n] != '\0') {
        cmdline[n] = si->cmd_line[n];
        n++;
    }
    cmdline[n] = '\0';
    force_remap = tp_cmdline_has_flag(cmdline, "tinypv.remap-rings");

    long rc = map_machine_page(shared_info_page, si->shared_info);
    if (rc != 0) {
        print("TINYPV-FAIL mapping shared_info failed rc=%ld\n", rc);
        shutdown(SHUTDOWN_CRASH);
    }
    shared = (volatile struct shared_info *)shared_info_page;
    shared->vcpu_info[0].evtchn_upcall_mask = 1;

    console_port = si->console_evtchn;
    char map_report[160];
    console = map_ring("console", si->console_mfn, console_fallback_page, map_report,
                       sizeof(map_report));
    if (console == NULL) {
        print("%s", map_report);
        fail("cannot map the console ring");
    }
    uint64_t up_ns = now_ns();
    print("TINYPV-UP\n");
    print("TINYPV-CONSOLE-IO rc=%ld\n", console_io_first_rc);
    print("%s", map_report);
    report_start_info(si, problems);

    print("TINYPV-CMDLINE %s\n", cmdline);

    if ((problems & TP_SI_NO_STORE) == 0) {
        store_port = si->store_evtchn;
        store = map_ring("store", si->store_mfn, store_fallback_page, map_report,
                         sizeof(map_report));
        print("%s", map_report);
    }
    if (store == NULL)
        print("TINYPV-NAME-ERROR no xenstore ring\n");
    else if (xs_read("name") == 0)
        print("TINYPV-NAME %s\n", reply_body);
    else
        print("TINYPV-NAME-ERROR %s\n", reply_body);

    enum tp_action action = tp_cmdline_action(cmdline);
    if (action == TP_ACTION_BLOCK)
        block_forever();

    volatile struct vcpu_time_info *clock = &shared->vcpu_info[0].time;
    print("TINYPV-ELAPSED up_to_done_us=%lu (clock version=%u system_time=%lu mul=%u shift=%d "
          "tsc_timestamp=%lu tsc=%lu)\n",
          (now_ns() - up_ns) / 1000, clock->version, clock->system_time, clock->tsc_to_system_mul,
          clock->tsc_shift, clock->tsc_timestamp, rdtsc());
    static const char *const action_names[] = { "poweroff", "reboot", "crash" };
    static const uint32_t reasons[] = { SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_CRASH };
    print("TINYPV-DONE %s\n", action_names[action]);
    wait_for(console_drained, console_port, DRAIN_TIMEOUT_NS);
    shutdown(reasons[action]);
}
