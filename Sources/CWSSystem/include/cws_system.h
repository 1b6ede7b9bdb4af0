// Linux system calls the Glibc module does not export (they need _GNU_SOURCE or live in headers
// it leaves out): epoll, eventfd, accept4, the CPU affinity count, glibc's mmap threshold.
#ifndef CWS_SYSTEM_H
#define CWS_SYSTEM_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC.
int cws_accept_nonblocking(int fd);

/// The number of CPUs in this process's affinity mask (0 if unknown).
int cws_affinity_cpu_count(void);

/// recv(2) and send(2) as plain system calls: -1 and errno on failure, like the libc functions,
/// but not cancellation points, so they skip glibc's per-call cancellation bookkeeping
/// (swift-ws never cancels threads).
long cws_recv(int fd, void *buffer, size_t length, int flags);
long cws_send(int fd, const void *buffer, size_t length, int flags);

/// mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD): allocations of `mmap_bytes` and more come from
/// mmap and go back to the system when freed; a heap gives its free top back to the system once
/// it exceeds `trim_bytes`. (glibc's thresholds are otherwise dynamic: the mmap threshold rises
/// to the largest block freed so far, up to 32 MiB, and the trim threshold to twice that.)
/// 1 on success.
int cws_set_malloc_thresholds(size_t mmap_bytes, size_t trim_bytes);

/// malloc_trim(0): gives the free pages of every malloc arena back to the system (glibc keeps
/// them otherwise, at the peak). 1 if memory was released.
int cws_trim_heap(void);

#endif
