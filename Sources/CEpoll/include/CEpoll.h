// Linux readiness and wake-up primitives for Switchyard's event loops: epoll, eventfd, accept4.
// Wrapped here because Swift does not import <sys/epoll.h>'s packed struct and variadic helpers well.
#pragma once
#include <stdint.h>
#include <sys/types.h>

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif

/// Creates an epoll instance (close-on-exec). Returns -1 and sets errno on failure.
int cswitchyard_epoll_create(void);
/// Adds, modifies or removes `fd`; `events` is a mask of CSWITCHYARD_EPOLL* flags, `token` comes back in waits.
int cswitchyard_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);
/// Waits for events; fills `events`/`tokens` arrays of length `max`. Returns the count, or -1 (errno).
int cswitchyard_epoll_wait(int epfd, uint32_t *events, uint64_t *tokens, int max, int timeout_ms);
/// Creates a non-blocking, close-on-exec eventfd.
int cswitchyard_eventfd(void);
/// Accepts a connection as non-blocking and close-on-exec.
int cswitchyard_accept4(int fd);
/// Names the calling thread (shown by top -H, perf, gdb); at most 15 bytes are kept.
void cswitchyard_set_thread_name(const char *name);
/// Sets the calling thread's nice value (Linux keeps one per thread). Returns 0, or -1 (errno).
int cswitchyard_set_thread_nice(int nice);
/// Asks the allocator to return free memory to the system (glibc's malloc_trim; nothing elsewhere). Returns
/// whether any was returned.
int cswitchyard_trim_heap(void);
/// Makes the allocator serve every allocation of `bytes` or more from its own mapping, returned to the system
/// when freed (glibc's M_MMAP_THRESHOLD, which also stops glibc from raising that threshold and its trim
/// threshold as large buffers come and go). Returns 1 on success, 0 elsewhere.
int cswitchyard_set_mmap_threshold(int bytes);
/// Makes the allocator grow (and keep) its heaps by at least `bytes` beyond what a request needs (glibc's
/// M_TOP_PAD), so a burst of small allocations grows a thread arena in few steps. Returns 1 on success, 0 elsewhere.
int cswitchyard_set_top_pad(int bytes);
/// Restricts the calling thread to the `count` CPUs in `cpus`. Returns 0, or an errno value.
int cswitchyard_pin_thread(const int *cpus, int count);
/// Writes the CPUs this process may run on (its main thread's affinity mask, which the gateway never
/// narrows) to `cpus`, at most `max` of them, in ascending order. Returns how many were written, or -1 (errno).
int cswitchyard_allowed_cpus(int *cpus, int max);

enum {
    CSWITCHYARD_EPOLL_CTL_ADD = 1,
    CSWITCHYARD_EPOLL_CTL_DEL = 2,
    CSWITCHYARD_EPOLL_CTL_MOD = 3,
};

enum {
    CSWITCHYARD_EPOLLIN = 0x001,
    CSWITCHYARD_EPOLLOUT = 0x004,
    CSWITCHYARD_EPOLLERR = 0x008,
    CSWITCHYARD_EPOLLHUP = 0x010,
    CSWITCHYARD_EPOLLRDHUP = 0x2000,
    CSWITCHYARD_EPOLLET = (int)(1u << 31),
};
