/*
 * A stand-in for Spread 3.17's sp.h, written for spread-sys's tests: a handful of the
 * same names with the values the 3.17 wire protocol fixes, so the build logic (discovery
 * and bindgen) can be tested on machines without a C Spread. Not Spread's header.
 */
#ifndef SPREAD_SYS_FAKE_SP_H
#define SPREAD_SYS_FAKE_SP_H

#define SPREAD_VERSION ((3 << 24) | (17 << 16) | 3)

#define MAX_GROUP_NAME 32
#define MAX_PRIVATE_NAME 10

#define UNRELIABLE_MESS 0x01
#define RELIABLE_MESS 0x02
#define FIFO_MESS 0x04
#define CAUSAL_MESS 0x08
#define AGREED_MESS 0x10
#define SAFE_MESS 0x20
#define SELF_DISCARD 0x40

#define ACCEPT_SESSION 1
#define ILLEGAL_SPREAD (-1)
#define COULD_NOT_CONNECT (-2)
#define ILLEGAL_GROUP (-14)
#define MESSAGE_TOO_LONG (-17)

typedef int mailbox;
typedef int service;

/* Two longs: its size tells which target clang compiled for. */
typedef struct fake_time {
    long sec;
    long usec;
} sp_time;

typedef struct fake_group_id {
    int id[3];
} group_id;

int SP_version(int *major, int *minor, int *patch);
int SP_connect_timeout(const char *daemon, const char *name, int priority,
                       int membership, mailbox *mbox, char *private_group,
                       sp_time timeout);
int SP_join(mailbox mbox, const char *group);
int SP_multicast(mailbox mbox, service service_type, const char *group,
                 short mess_type, int mess_len, const char *mess);

/* Not part of the client API: must stay out of the bindings. */
int E_init(void);

#endif
