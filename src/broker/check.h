/*
 * `viesti broker --test-config`: everything vs_broker_init() and the start-up would refuse,
 * checked without binding a port, writing a file or starting a thread.
 */
#ifndef VS_BROKER_CHECK_H
#define VS_BROKER_CHECK_H

#include "conf/conf.h"

/*
 * Checks a loaded, finished and validated configuration as the start-up would use it: password
 * and ACL files (read with the same parsers; every bad line is reported, not only the first),
 * TLS listeners (certificates, keys, CAs, CRLs, DH parameters and PSK files loaded into an
 * OpenSSL context as at start-up), WebSocket http_dir, unix socket paths (their directory, and
 * what is already there), bind_interface and listener addresses (resolved, not bound), MQTT-SN
 * predefined topic files, the persistence directory, the log file, the pid file's directory and
 * `user`. Each problem goes to report, prefixed by the listener or directive it concerns.
 * Returns how many there were (0: the start-up would get as far as binding its ports).
 */
int vs_broker_check(const struct vs_config *c, vs_conf_report_fn report, void *ud);

#endif
