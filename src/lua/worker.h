/* Workers (--workers N): threads, each with a loop and a Lua VM of its own,
 * listening on the same addresses (SO_REUSEPORT) and joined by the
 * in-process bus (net/bus.h). The main thread only waits and handles
 * signals, which it passes on to the workers as commands. */
#ifndef WSL_LUA_WORKER_H
#define WSL_LUA_WORKER_H

#include <lua.h>
#include <uv.h>

/* Runs one worker's VM on loop until it is done; returns its exit status.
 * Called on the worker's thread. */
typedef int (*wsl_worker_fn)(uv_loop_t *loop, void *arg);

/* Runs n workers (n >= 2) of fn and waits for them. Worker 1 starts alone;
 * the others once it has started serving (core.worker_ready), taking the
 * ports it listens on. SIGINT and SIGTERM send every worker "stop", SIGHUP
 * "reload". A worker that exits with a failure stops the others. Returns 0
 * when every worker returned 0, else the first failure's status. */
int wsl_workers_run(int n, wsl_worker_fn fn, void *arg);

/* This thread's worker number (from 1) and how many workers there are:
 * 1 and 1 without workers. */
int wsl_worker_id(void);
int wsl_worker_count(void);

/* Registers worker, worker_ready, worker_ports, instance and bus in the
 * module table on top of the stack. */
void wsl_lua_open_worker(lua_State *L);

#endif
