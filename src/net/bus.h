/* The in-process bus: messages between the workers (threads, each with its
 * own loop) of one process. Each member has a queue guarded by a mutex and
 * a uv_async_t on its own loop; a message for several members is copied
 * once and reference counted. Payloads are bytes: what they mean is the
 * owner's business (the Lua layer packs topics, broadcasts and commands).
 *
 * Thread safety: wsl_bus_send may be called from any thread; attach and
 * detach only from the member's own thread (its loop's). Messages from one
 * sender to one member arrive in the order sent. */
#ifndef WSL_BUS_H
#define WSL_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct wsl_bus wsl_bus_t;

/* Kind 0 is for commands (stop, reload): never dropped. */
#define WSL_BUS_COMMAND 0

/* A member's queue holds at most this many bytes of payload; past it, a
 * message that is not a command is dropped for that member and counted. */
#define WSL_BUS_MAX_QUEUED (64u * 1024 * 1024)

/* Called on the member's loop for each message; data is valid during the
 * call only. from is the sending member (0: the process's main thread). */
typedef void (*wsl_bus_cb)(void *ud, int kind, int from, const char *data,
                           size_t len);

/* A bus for members 1..members. NULL when out of memory. */
wsl_bus_t *wsl_bus_new(int members);
/* Frees what is left. Call once no thread sends any more and every member
 * that attached has detached. */
void wsl_bus_free(wsl_bus_t *b);
int wsl_bus_members(const wsl_bus_t *b);

/* Starts delivering member's messages to cb on loop, including those sent
 * before it attached. Returns 0, UV_EINVAL (no such member, or attached
 * already) or UV_ENOMEM. */
int wsl_bus_attach(wsl_bus_t *b, int member, uv_loop_t *loop, wsl_bus_cb cb,
                   void *ud);
/* Stops delivering: cb is not called after this returns; what is queued,
 * and what is sent later, is dropped. The async handle is closed (its
 * memory freed in its close callback, on the member's loop). A member that
 * never attached may detach too, so that nothing waits for it any more. */
void wsl_bus_detach(wsl_bus_t *b, int member);

/* Queues a message for member to, or for every member but from when to is
 * 0. Returns how many members it was queued for (one that has detached, or
 * whose queue is full, does not count), or UV_ENOMEM. */
int wsl_bus_send(wsl_bus_t *b, int to, int from, int kind, const void *data,
                 size_t len);

/* Messages dropped so far because member's queue was full. */
uint64_t wsl_bus_dropped(wsl_bus_t *b, int member);

#endif
