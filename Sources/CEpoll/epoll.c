#define _GNU_SOURCE
#include "CEpoll.h"

#ifdef __linux__
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

int cswitchyard_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cswitchyard_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    int realop = op == CSWITCHYARD_EPOLL_CTL_ADD   ? EPOLL_CTL_ADD
                 : op == CSWITCHYARD_EPOLL_CTL_DEL ? EPOLL_CTL_DEL
                                                   : EPOLL_CTL_MOD;
    return epoll_ctl(epfd, realop, fd, &ev);
}

int cswitchyard_epoll_wait(int epfd, uint32_t *events, uint64_t *tokens, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        events[i] = evs[i].events;
        tokens[i] = evs[i].data.u64;
    }
    return n;
}

int cswitchyard_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int cswitchyard_accept4(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

void cswitchyard_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }

int cswitchyard_set_thread_nice(int nice) { return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice); }

int cswitchyard_trim_heap(void) {
#ifdef __GLIBC__
    return malloc_trim(0);
#else
    return 0;
#endif
}

int cswitchyard_set_top_pad(int bytes) {
#ifdef __GLIBC__
    return mallopt(M_TOP_PAD, bytes);
#else
    return 0;
#endif
}

int cswitchyard_set_mmap_threshold(int bytes) {
#ifdef __GLIBC__
    return mallopt(M_MMAP_THRESHOLD, bytes);
#else
    return 0;
#endif
}

int cswitchyard_pin_thread(const int *cpus, int count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++) {
        if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE) return EINVAL;
        CPU_SET(cpus[i], &set);
    }
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int cswitchyard_allowed_cpus(int *cpus, int max) {
    cpu_set_t set;
    // The main thread's mask (its id is the process id), not the caller's, which may be pinned.
    if (sched_getaffinity(getpid(), sizeof set, &set) != 0) return -1;
    int written = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && written < max; cpu++)
        if (CPU_ISSET(cpu, &set)) cpus[written++] = cpu;
    return written;
}
#endif
