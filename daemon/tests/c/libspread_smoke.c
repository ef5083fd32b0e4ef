/*
 * A small program of ours, linked with an installed libspread 3.17, that exercises our
 * daemon through the C library: connect, join, every service type, SELF_DISCARD, a
 * multigroup send, membership on join/leave/disconnect, the largest message and one byte
 * more. Prints one line per check; the Rust test reads them.
 * Usage: libspread_smoke <port@host>
 */
#include <sp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char buf[200000];

static int recv_one(mailbox m, service *st, char *sender, int *ngroups, char groups[][MAX_GROUP_NAME],
                    int16 *mtype, int *endian) {
    *st = 0;
    return SP_receive(m, st, sender, 10, ngroups, groups, mtype, endian, sizeof(buf), buf);
}

int main(int argc, char **argv) {
    mailbox a, b;
    char pa[MAX_GROUP_NAME], pb[MAX_GROUP_NAME], sender[MAX_GROUP_NAME], groups[10][MAX_GROUP_NAME];
    service st;
    int ng, endian, ret, i;
    int16 mt;
    static const service kinds[6] = {UNRELIABLE_MESS, RELIABLE_MESS, FIFO_MESS, CAUSAL_MESS, AGREED_MESS, SAFE_MESS};

    if (argc < 2) return 2;
    if ((ret = SP_connect(argv[1], "ca", 0, 1, &a, pa)) != ACCEPT_SESSION) { printf("connect-a %d\n", ret); return 1; }
    if ((ret = SP_connect(argv[1], "cb", 0, 1, &b, pb)) != ACCEPT_SESSION) { printf("connect-b %d\n", ret); return 1; }
    printf("connected %s %s\n", pa, pb);

    SP_join(a, "cg");
    ret = recv_one(a, &st, sender, &ng, groups, &mt, &endian);
    printf("join-a %s members=%d reg=%d join=%d\n", sender, ng, Is_reg_memb_mess(st) != 0, Is_caused_join_mess(st) != 0);
    SP_join(b, "cg");
    recv_one(a, &st, sender, &ng, groups, &mt, &endian);
    printf("join-b-seen-by-a members=%d first=%s second=%s index=%d\n", ng, groups[0], groups[1], mt);
    recv_one(b, &st, sender, &ng, groups, &mt, &endian);
    printf("join-b-seen-by-b members=%d index=%d\n", ng, mt);

    for (i = 0; i < 6; i++) {
        sprintf(buf, "kind %d", i);
        SP_multicast(a, kinds[i], "cg", (int16)(i + 1), (int)strlen(buf) + 1, buf);
    }
    SP_multicast(a, SAFE_MESS | SELF_DISCARD, "cg", 7, 5, "mine");
    for (i = 0; i < 7; i++) {
        ret = recv_one(b, &st, sender, &ng, groups, &mt, &endian);
        printf("b-got type=0x%x mess_type=%d from=%s len=%d\n", (unsigned)st, mt, sender, ret);
    }
    for (i = 0; i < 6; i++) {
        ret = recv_one(a, &st, sender, &ng, groups, &mt, &endian);
        printf("a-got type=0x%x mess_type=%d\n", (unsigned)st, mt);
    }
    {
        char two[2][MAX_GROUP_NAME];
        strcpy(two[0], "cg");
        strcpy(two[1], "other");
        SP_multigroup_multicast(a, AGREED_MESS, 2, (const char (*)[MAX_GROUP_NAME])two, 9, 3, "mg");
        recv_one(b, &st, sender, &ng, groups, &mt, &endian);
        printf("multigroup groups=%d %s %s\n", ng, groups[0], groups[1]);
        recv_one(a, &st, sender, &ng, groups, &mt, &endian);
    }
    /* The largest message a 3.17 daemon admits to one group, and one byte more. */
    memset(buf, 'z', sizeof(buf));
    ret = SP_multicast(a, AGREED_MESS, "cg", 1, 143920, buf);
    printf("largest send=%d\n", ret);
    ret = recv_one(b, &st, sender, &ng, groups, &mt, &endian);
    printf("largest recv=%d\n", ret);
    recv_one(a, &st, sender, &ng, groups, &mt, &endian);
    ret = SP_multicast(a, AGREED_MESS, "cg", 1, 144001 - 32, buf);
    printf("too-long send=%d\n", ret);

    SP_leave(b, "cg");
    recv_one(b, &st, sender, &ng, groups, &mt, &endian);
    printf("self-leave %d\n", Is_self_leave(st) != 0);
    recv_one(a, &st, sender, &ng, groups, &mt, &endian);
    printf("leave-seen members=%d leave=%d\n", ng, Is_caused_leave_mess(st) != 0);
    SP_join(b, "cg");
    recv_one(a, &st, sender, &ng, groups, &mt, &endian);
    recv_one(b, &st, sender, &ng, groups, &mt, &endian);
    SP_disconnect(b);
    recv_one(a, &st, sender, &ng, groups, &mt, &endian);
    printf("disconnect-seen members=%d disconnect=%d\n", ng, Is_caused_disconnect_mess(st) != 0);
    SP_disconnect(a);
    printf("done\n");
    return 0;
}
