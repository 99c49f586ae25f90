/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * tiny-pv entry, Xen ELF notes, hypercall page and callbacks.
 *
 * A 64-bit PV vcpu starts in (ring-3) kernel mode at the ENTRY note's
 * address with %rsi = virtual address of start_info and %rsp on a boot stack
 * the domain builder chose. We switch to our own stack and call C.
 */
#define XEN_ELFNOTE_ENTRY 1
#define XEN_ELFNOTE_HYPERCALL_PAGE 2
#define XEN_ELFNOTE_VIRT_BASE 3
#define XEN_ELFNOTE_PADDR_OFFSET 4
#define XEN_ELFNOTE_XEN_VERSION 5
#define XEN_ELFNOTE_GUEST_OS 6
#define XEN_ELFNOTE_GUEST_VERSION 7
#define XEN_ELFNOTE_LOADER 8
#define XEN_ELFNOTE_PAE_MODE 9
#define XEN_ELFNOTE_FEATURES 10
#define XEN_ELFNOTE_BSD_SYMTAB 11

#define HYPERCALL_IRET 23

/* One ELF note with owner "Xen": namesz, descsz, type, name, desc, 4-byte padded. */
.macro xen_note type:req, desc:vararg
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 2f - 1f
    .long 4f - 3f
    .long \type
1:  .asciz "Xen"
2:  .balign 4
3:  \desc
4:  .balign 4
    .popsection
.endm

    xen_note XEN_ELFNOTE_GUEST_OS, .asciz "tiny-pv"
    xen_note XEN_ELFNOTE_GUEST_VERSION, .asciz "0.1"
    xen_note XEN_ELFNOTE_XEN_VERSION, .asciz "xen-3.0"
    xen_note XEN_ELFNOTE_LOADER, .asciz "generic"
    xen_note XEN_ELFNOTE_VIRT_BASE, .quad __virt_base
    xen_note XEN_ELFNOTE_PADDR_OFFSET, .quad 0
    xen_note XEN_ELFNOTE_ENTRY, .quad _start
    xen_note XEN_ELFNOTE_HYPERCALL_PAGE, .quad hypercall_page
    xen_note XEN_ELFNOTE_FEATURES, .asciz "!writable_page_tables|pae_pgdir_above_4gb"
    xen_note XEN_ELFNOTE_PAE_MODE, .asciz "yes"
    xen_note XEN_ELFNOTE_BSD_SYMTAB, .asciz "no"

    .section .text.head, "ax", @progbits
    .globl _start
_start:
    cld
    leaq boot_stack_top(%rip), %rsp
    movq %rsi, %rdi
    call tinypv_main
    /* tinypv_main does not return; should it, crash rather than run off. */
    call tinypv_fatal_return

/*
 * Xen fills this page with one 32-byte stub per hypercall before the guest
 * starts (the HYPERCALL_PAGE note names it). It takes no room in the file:
 * the linker script puts it last in the text segment, as zero-filled memory.
 */
    .section .hypercall_page, "ax", @nobits
    .globl hypercall_page
hypercall_page:
    .skip 4096

    .text
/*
 * Event upcall. tiny-pv keeps event delivery masked and waits with
 * SCHEDOP_poll, so this only runs if a builder left vcpu_info's upcall mask
 * clear. Xen pushed rcx, r11, rip, cs, rflags, rsp, ss and masked events;
 * return with IF clear in the saved rflags so they stay masked.
 */
    .globl tinypv_event_callback
tinypv_event_callback:
    movq (%rsp), %rcx
    movq 8(%rsp), %r11
    addq $16, %rsp
    andq $~0x200, 16(%rsp)
    pushq $0                     /* iret flags: not returning from a syscall */
    jmp hypercall_page + HYPERCALL_IRET * 32

/* Xen could not load a segment register on return to us: report and crash. */
    .globl tinypv_failsafe_callback
tinypv_failsafe_callback:
    andq $-16, %rsp
    call tinypv_failsafe
    ud2

    .section .bss.stack, "aw", @nobits
    .balign 16
boot_stack:
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
