/*
 * Housekeeping run by worker 0: session expiry and delayed wills (every second), and the $SYS
 * topics with Mosquitto's names (every sys_interval seconds), published as retained messages.
 */
#ifndef VS_BROKER_SYS_H
#define VS_BROKER_SYS_H

struct vs_worker;

/* Called by worker 0 on every sweep (about every 100 ms). */
void vs_sys_tick(struct vs_worker *w);

#endif
