#define _GNU_SOURCE
#include <malloc.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cws_system.h"

int cws_accept_nonblocking(int fd) {
    return accept4(fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

long cws_recv(int fd, void *buffer, size_t length, int flags) {
    return syscall(SYS_recvfrom, fd, buffer, length, flags, NULL, NULL);
}

long cws_send(int fd, const void *buffer, size_t length, int flags) {
    return syscall(SYS_sendto, fd, buffer, length, flags, NULL, 0);
}

int cws_affinity_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}

int cws_set_malloc_thresholds(size_t mmap_bytes, size_t trim_bytes) {
    return mallopt(M_MMAP_THRESHOLD, (int)mmap_bytes) && mallopt(M_TRIM_THRESHOLD, (int)trim_bytes);
}

int cws_trim_heap(void) {
    return malloc_trim(0);
}
