/*
 * bulwark.h: the umbrella header. Include this, or the module headers
 * under bulwark/ one by one.
 *
 *   status.h    status codes, bw_strerror, bw_err_name
 *   alloc.h     the replaceable allocator
 *   log.h       the logging hook
 *   error.h     the error value that travels to domains
 *   loop.h      the event loop (a libuv loop plus bulwark's queues)
 *   guard.h     throw, try, invoke; the process-level uncaught handlers
 *   domain.h    domains: stack, members, bind/intercept, arena, cleanups
 *   emitter.h   event emitters with Node's `error` routing
 *   timer.h     timeouts and intervals bound to domains
 *   tick.h      next tick and immediates
 *   resource.h  the user's own objects (raw libuv handles) in domains
 *   fs.h        a few asynchronous file-system requests
 *   http.h      the HTTP/1.1 server with a domain per request
 *   router.h    method + path routing for an HTTP server
 *   cluster.h   the primary that supervises workers; the crash-safe policy
 */
#ifndef BULWARK_H
#define BULWARK_H

#include "bulwark/common.h"
#include "bulwark/status.h"
#include "bulwark/alloc.h"
#include "bulwark/log.h"
#include "bulwark/error.h"
#include "bulwark/loop.h"
#include "bulwark/guard.h"
#include "bulwark/domain.h"
#include "bulwark/emitter.h"
#include "bulwark/timer.h"
#include "bulwark/tick.h"
#include "bulwark/resource.h"
#include "bulwark/fs.h"
#include "bulwark/http.h"
#include "bulwark/router.h"
#include "bulwark/access_log.h"
#include "bulwark/cluster.h"

#endif /* BULWARK_H */
