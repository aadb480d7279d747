/*
 * dfuhop-usb-server: presents USB devices over umockdev so that unmodified libusb programs (dfuhop,
 * dfu-util) see them, and forwards every control request to a peer that owns the device behaviour.
 * The peer talks to this server over its stdin/stdout with the line protocol in PROTOCOL.md.
 *
 * The server knows USB (usbfs ioctls, URBs, sysfs layout), nothing about DFU: descriptors come from
 * the peer at PLUG time, and every control transfer, SET_INTERFACE included, is answered by the peer.
 *
 * umockdev API: /usr/include/umockdev-1.0/umockdev.h; usbfs: <linux/usbdevice_fs.h>.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/hidraw.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <umockdev.h>

#define PROTOCOL_VERSION 2
#define MAX_DEVICES 32
#define MAX_COMPLETED 64
#define PEER_REPLY_TIMEOUT_S 60
#define PRELOAD "libumockdev-preload.so.0"

/* USB 2.0 §9.4 standard requests the server turns usbfs ioctls into. */
#define REQ_SET_CONFIGURATION 0x09
#define REQ_SET_INTERFACE 0x0B

static void die(const char *what) {
    fprintf(stderr, "dfuhop-usb-server: %s\n", what);
    exit(2);
}

/* ---------- output to the peer: one writer at a time ---------- */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void send_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void send_line(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    pthread_mutex_lock(&out_lock);
    vfprintf(stdout, fmt, args);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    va_end(args);
}

static char *hex_encode(const guint8 *data, size_t length) {
    static const char digits[] = "0123456789abcdef";
    char *text = g_malloc(length * 2 + 2);
    if (length == 0) {
        strcpy(text, "-");
        return text;
    }
    for (size_t i = 0; i < length; i++) {
        text[2 * i] = digits[data[i] >> 4];
        text[2 * i + 1] = digits[data[i] & 15];
    }
    text[length * 2] = '\0';
    return text;
}

static int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex ("-" is empty) into a new buffer; returns -1 on a malformed string. */
static long hex_decode(const char *text, guint8 **out) {
    *out = NULL;
    if (strcmp(text, "-") == 0) return 0;
    size_t length = strlen(text);
    if (length % 2 != 0) return -1;
    guint8 *bytes = g_malloc(length / 2 + 1);
    for (size_t i = 0; i < length / 2; i++) {
        int high = nibble(text[2 * i]), low = nibble(text[2 * i + 1]);
        if (high < 0 || low < 0) {
            g_free(bytes);
            return -1;
        }
        bytes[i] = (guint8)(high << 4 | low);
    }
    *out = bytes;
    return (long)(length / 2);
}

/* %XX decoding for attribute values (PROTOCOL.md: PLUG key=value). */
static char *percent_decode(const char *text) {
    char *result = g_malloc(strlen(text) + 1), *w = result;
    for (const char *r = text; *r; r++) {
        unsigned value;
        if (r[0] == '%' && r[1] && r[2] && sscanf(r + 1, "%2x", &value) == 1) {
            *w++ = (char)value;
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return result;
}

/* ---------- the one outstanding request to the peer ---------- */

enum reply_kind { REPLY_NONE, REPLY_ACK, REPLY_STALL, REPLY_NODEV, REPLY_TIMEOUT };

static struct {
    pthread_mutex_t lock;     /* one request in flight */
    pthread_mutex_t state;    /* guards the fields below */
    pthread_cond_t arrived;
    unsigned long sequence;
    int waiting;
    enum reply_kind kind;
    guint8 *data;
    long length;
} exchange = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, REPLY_NONE, NULL, 0};

/* Sends `line_fmt` (which must start with "%s %lu" for the verb and sequence) and waits for the
 * peer's REPLY. Returns the reply kind; data (for ACK) is handed over to the caller. */
static enum reply_kind ask_peer(const char *verb, const char *rest, guint8 **data, long *length) {
    pthread_mutex_lock(&exchange.lock);
    pthread_mutex_lock(&exchange.state);
    unsigned long sequence = ++exchange.sequence;
    exchange.waiting = 1;
    exchange.kind = REPLY_NONE;
    pthread_mutex_unlock(&exchange.state);

    send_line("%s %lu %s", verb, sequence, rest);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += PEER_REPLY_TIMEOUT_S;
    pthread_mutex_lock(&exchange.state);
    while (exchange.kind == REPLY_NONE) {
        if (pthread_cond_timedwait(&exchange.arrived, &exchange.state, &deadline) == ETIMEDOUT) break;
    }
    enum reply_kind kind = exchange.kind;
    if (kind == REPLY_NONE) {
        fprintf(stderr, "dfuhop-usb-server: no REPLY to %s %lu within %d s; failing the request\n", verb, sequence,
                PEER_REPLY_TIMEOUT_S);
        kind = REPLY_NODEV;
    }
    if (data) {
        *data = exchange.data;
        *length = exchange.length;
    } else {
        g_free(exchange.data);
    }
    exchange.data = NULL;
    exchange.length = 0;
    exchange.waiting = 0;
    pthread_mutex_unlock(&exchange.state);
    pthread_mutex_unlock(&exchange.lock);
    return kind;
}

/* The errno a client sees for a reply (0 for ACK): what the kernel reports for a STALL handshake, a
 * transfer that timed out, and a device that is gone. */
static int reply_errno(enum reply_kind kind) {
    switch (kind) {
    case REPLY_ACK: return 0;
    case REPLY_STALL: return EPIPE;
    case REPLY_TIMEOUT: return ETIMEDOUT;
    default: return ENODEV;
    }
}

/* Called on the main thread for a REPLY line. */
static void deliver_reply(unsigned long sequence, const char *kind_text, const char *hex) {
    enum reply_kind kind = REPLY_NONE;
    if (strcmp(kind_text, "ACK") == 0) kind = REPLY_ACK;
    else if (strcmp(kind_text, "STALL") == 0) kind = REPLY_STALL;
    else if (strcmp(kind_text, "NODEV") == 0) kind = REPLY_NODEV;
    else if (strcmp(kind_text, "TIMEOUT") == 0) kind = REPLY_TIMEOUT;
    if (kind == REPLY_NONE) {
        send_line("ERROR REPLY %lu: unknown kind '%s'", sequence, kind_text);
        return;
    }
    guint8 *data = NULL;
    long length = 0;
    if (kind == REPLY_ACK && hex && (length = hex_decode(hex, &data)) < 0) {
        send_line("ERROR REPLY %lu: malformed hex data", sequence);
        return;
    }
    pthread_mutex_lock(&exchange.state);
    if (!exchange.waiting || sequence != exchange.sequence || exchange.kind != REPLY_NONE) {
        pthread_mutex_unlock(&exchange.state);
        g_free(data);
        send_line("ERROR REPLY %lu: no request with that sequence number is waiting", sequence);
        return;
    }
    exchange.kind = kind;
    exchange.data = data;
    exchange.length = length;
    pthread_cond_signal(&exchange.arrived);
    pthread_mutex_unlock(&exchange.state);
}

/* ---------- emulated devices ---------- */

struct hidraw;

struct device {
    int in_use;
    char port[32];       /* "1-3.2" */
    unsigned bus, devnum;
    char devnode[64];    /* /dev/bus/usb/BBB/DDD */
    char *syspath;
    UMockdevIoctlBase *handler;
    struct hidraw *hid;  /* the HID interface's hidraw node, if the device has one */
};

/* What one client (one open() of the node) has pending: URBs completed but not yet reaped, and
 * URBs the peer left unanswered (TIMEOUT) until the client discards them. */
struct client_state {
    gulong completed[MAX_COMPLETED];
    int completed_count;
    gulong unanswered[MAX_COMPLETED];
    int unanswered_count;
};

static UMockdevTestbed *testbed;
static struct device devices[MAX_DEVICES];
static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned next_devnum[256];
static GHashTable *hubs; /* sysfs name -> syspath of the hubs created for port paths */

static struct client_state *state_of(UMockdevIoctlClient *client) {
    struct client_state *state = g_object_get_data(G_OBJECT(client), "dfuhop-state");
    if (!state) {
        state = g_new0(struct client_state, 1);
        g_object_set_data_full(G_OBJECT(client), "dfuhop-state", state, g_free);
    }
    return state;
}

static int push(gulong *queue, int *count, gulong value) {
    if (*count >= MAX_COMPLETED) return -1;
    queue[(*count)++] = value;
    return 0;
}

static int take(gulong *queue, int *count, gulong value) {
    for (int i = 0; i < *count; i++) {
        if (queue[i] == value) {
            memmove(queue + i, queue + i + 1, (size_t)(*count - i - 1) * sizeof(gulong));
            (*count)--;
            return 1;
        }
    }
    return 0;
}

/* Forwards a setup packet (and OUT data) to the peer. For IN, copies the answer into `in`. */
static enum reply_kind forward_control(const char *port, const guint8 setup[8], const guint8 *out_data,
                                       guint8 *in, int *actual) {
    unsigned request_type = setup[0], request = setup[1];
    unsigned value = setup[2] | setup[3] << 8, index = setup[4] | setup[5] << 8, length = setup[6] | setup[7] << 8;
    int device_to_host = request_type & 0x80;
    char *hex = hex_encode(out_data, device_to_host ? 0 : length);
    char *rest = g_strdup_printf("%s %02x %02x %04x %04x %04x %s", port, request_type, request, value, index, length, hex);
    g_free(hex);
    guint8 *answer = NULL;
    long answer_length = 0;
    enum reply_kind kind = ask_peer("CONTROL", rest, &answer, &answer_length);
    g_free(rest);
    *actual = 0;
    if (kind == REPLY_ACK) {
        if (device_to_host) {
            long n = answer_length < (long)length ? answer_length : (long)length;
            if (n > 0 && in) memcpy(in, answer, (size_t)n);
            *actual = (int)n;
        } else {
            *actual = (int)length;
        }
    }
    g_free(answer);
    return kind;
}

static UMockdevIoctlData *resolve(UMockdevIoctlData *data, gsize offset, gsize length) {
    GError *error = NULL;
    UMockdevIoctlData *result = umockdev_ioctl_data_resolve(data, offset, length, &error);
    if (error) {
        fprintf(stderr, "dfuhop-usb-server: cannot read client memory: %s\n", error->message);
        g_error_free(error);
        return NULL;
    }
    return result;
}

static void submit_urb(struct device *dev, UMockdevIoctlClient *client, UMockdevIoctlData *arg) {
    UMockdevIoctlData *urb_data = resolve(arg, 0, sizeof(struct usbdevfs_urb));
    if (!urb_data) {
        umockdev_ioctl_client_complete(client, -1, EFAULT);
        return;
    }
    struct usbdevfs_urb *urb = (struct usbdevfs_urb *)urb_data->data;
    if (urb->type != USBDEVFS_URB_TYPE_CONTROL || urb->buffer_length < 8) {
        /* Only control transfers are emulated (PROTOCOL.md: scope). */
        g_object_unref(urb_data);
        umockdev_ioctl_client_complete(client, -1, EINVAL);
        return;
    }
    UMockdevIoctlData *buffer = resolve(urb_data, offsetof(struct usbdevfs_urb, buffer), (gsize)urb->buffer_length);
    if (!buffer) {
        g_object_unref(urb_data);
        umockdev_ioctl_client_complete(client, -1, EFAULT);
        return;
    }
    guint8 *bytes = buffer->data;
    unsigned length = bytes[6] | bytes[7] << 8;
    if ((int)length > urb->buffer_length - 8) length = (unsigned)(urb->buffer_length - 8);
    bytes[6] = length & 0xFF;
    bytes[7] = length >> 8;
    int actual = 0;
    enum reply_kind kind = forward_control(dev->port, bytes, bytes + 8, bytes + 8, &actual);
    struct client_state *state = state_of(client);
    gulong address = urb_data->client_addr;
    int result = 0, error = 0;
    switch (kind) {
    case REPLY_ACK:
        urb->status = 0;
        urb->actual_length = actual;
        if (push(state->completed, &state->completed_count, address) < 0) result = -1, error = ENOMEM;
        break;
    case REPLY_STALL:
        urb->status = -EPIPE; /* the kernel's code for a STALL handshake */
        urb->actual_length = 0;
        if (push(state->completed, &state->completed_count, address) < 0) result = -1, error = ENOMEM;
        break;
    case REPLY_TIMEOUT:
        if (push(state->unanswered, &state->unanswered_count, address) < 0) result = -1, error = ENOMEM;
        break;
    case REPLY_NODEV:
    case REPLY_NONE:
        result = -1, error = ENODEV;
        break;
    }
    g_object_unref(buffer);
    g_object_unref(urb_data);
    umockdev_ioctl_client_complete(client, result, error);
}

static void reap_urb(UMockdevIoctlClient *client, UMockdevIoctlData *arg) {
    struct client_state *state = state_of(client);
    if (state->completed_count == 0) {
        umockdev_ioctl_client_complete(client, -1, EAGAIN);
        return;
    }
    gulong address = state->completed[0];
    take(state->completed, &state->completed_count, address);
    UMockdevIoctlData *slot = resolve(arg, 0, sizeof(void *));
    if (!slot) {
        umockdev_ioctl_client_complete(client, -1, EFAULT);
        return;
    }
    memcpy(slot->data, &address, sizeof(void *));
    g_object_unref(slot);
    umockdev_ioctl_client_complete(client, 0, 0);
}

static void discard_urb(UMockdevIoctlClient *client, UMockdevIoctlData *arg) {
    struct client_state *state = state_of(client);
    gulong address = *(gulong *)arg->data;
    if (!take(state->unanswered, &state->unanswered_count, address)) {
        umockdev_ioctl_client_complete(client, -1, EINVAL); /* already completed */
        return;
    }
    UMockdevIoctlData *urb_data = resolve(arg, 0, sizeof(struct usbdevfs_urb));
    if (!urb_data) {
        umockdev_ioctl_client_complete(client, -1, EFAULT);
        return;
    }
    struct usbdevfs_urb *urb = (struct usbdevfs_urb *)urb_data->data;
    urb->status = -ENOENT; /* what a killed URB reports */
    urb->actual_length = 0;
    push(state->completed, &state->completed_count, address);
    g_object_unref(urb_data);
    umockdev_ioctl_client_complete(client, 0, 0);
}

/* SET_INTERFACE / SET_CONFIGURATION go to the peer as the standard requests they are on the wire. */
static void forward_standard(struct device *dev, UMockdevIoctlClient *client, guint8 request_type, guint8 request,
                             unsigned value, unsigned index) {
    guint8 setup[8] = {request_type, request, value & 0xFF, value >> 8, index & 0xFF, index >> 8, 0, 0};
    int actual = 0;
    enum reply_kind kind = forward_control(dev->port, setup, NULL, NULL, &actual);
    umockdev_ioctl_client_complete(client, kind == REPLY_ACK ? 0 : -1, reply_errno(kind));
}

static gboolean on_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer user_data) {
    (void)handler;
    struct device *dev = user_data;
    gulong request = umockdev_ioctl_client_get_request(client);
    UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);

    if (request == (gulong)USBDEVFS_SUBMITURB) {
        submit_urb(dev, client, arg);
    } else if (request == (gulong)USBDEVFS_REAPURBNDELAY || request == (gulong)USBDEVFS_REAPURB) {
        reap_urb(client, arg);
    } else if (request == (gulong)USBDEVFS_DISCARDURB) {
        discard_urb(client, arg);
    } else if (request == (gulong)USBDEVFS_GET_CAPABILITIES) {
        UMockdevIoctlData *caps = resolve(arg, 0, sizeof(__u32));
        if (caps) {
            *(__u32 *)caps->data = 0;
            g_object_unref(caps);
        }
        umockdev_ioctl_client_complete(client, 0, 0);
    } else if (request == (gulong)USBDEVFS_GET_SPEED) {
        umockdev_ioctl_client_complete(client, 2 /* USB_SPEED_FULL */, 0);
    } else if (request == (gulong)USBDEVFS_CONNECTINFO) {
        UMockdevIoctlData *info = resolve(arg, 0, sizeof(struct usbdevfs_connectinfo));
        if (info) {
            ((struct usbdevfs_connectinfo *)info->data)->devnum = dev->devnum;
            ((struct usbdevfs_connectinfo *)info->data)->slow = 0;
            g_object_unref(info);
        }
        umockdev_ioctl_client_complete(client, 0, 0);
    } else if (request == (gulong)USBDEVFS_CLAIMINTERFACE || request == (gulong)USBDEVFS_RELEASEINTERFACE ||
               request == (gulong)USBDEVFS_CLEAR_HALT) {
        umockdev_ioctl_client_complete(client, 0, 0);
    } else if (request == (gulong)USBDEVFS_SETINTERFACE) {
        UMockdevIoctlData *data = resolve(arg, 0, sizeof(struct usbdevfs_setinterface));
        if (!data) {
            umockdev_ioctl_client_complete(client, -1, EFAULT);
            return TRUE;
        }
        struct usbdevfs_setinterface setting = *(struct usbdevfs_setinterface *)data->data;
        g_object_unref(data);
        forward_standard(dev, client, 0x01, REQ_SET_INTERFACE, setting.altsetting, setting.interface);
    } else if (request == (gulong)USBDEVFS_SETCONFIGURATION) {
        UMockdevIoctlData *data = resolve(arg, 0, sizeof(unsigned int));
        if (!data) {
            umockdev_ioctl_client_complete(client, -1, EFAULT);
            return TRUE;
        }
        unsigned configuration = *(unsigned int *)data->data;
        g_object_unref(data);
        forward_standard(dev, client, 0x00, REQ_SET_CONFIGURATION, configuration, 0);
    } else if (request == (gulong)USBDEVFS_RESET) {
        char rest[48];
        snprintf(rest, sizeof rest, "%s", dev->port);
        enum reply_kind kind = ask_peer("RESET", rest, NULL, NULL);
        umockdev_ioctl_client_complete(client, kind == REPLY_ACK ? 0 : -1, kind == REPLY_ACK ? 0 : ENODEV);
    } else if (request == (gulong)USBDEVFS_GETDRIVER || request == (gulong)USBDEVFS_IOCTL) {
        umockdev_ioctl_client_complete(client, -1, ENODATA); /* no kernel driver is bound */
    } else {
        umockdev_ioctl_client_complete(client, -1, ENOTTY); /* e.g. DISCONNECT_CLAIM: libusb falls back */
    }
    return TRUE;
}

/* ---------- hidraw: the application's HID interface ----------
 *
 * Linux gives a HID interface a hidraw node (Documentation/hid/hidraw.rst): write() sends an output
 * report (report id first), read() returns one input report, and report descriptor and feature reports
 * come as HIDIOC* ioctls. umockdev backs the node with a pty; the server answers read, write and ioctl
 * itself through an ioctl handler, and uses the pty only for readiness: one byte on the pty per queued
 * input report, so that a client's poll() wakes as it would for the real node. Reports keep their
 * boundaries because they never travel through the pty. A hidraw object outlives its device (clients
 * may still hold the node open after an unplug), so it is allocated on its own and kept to the end. */

#define MAX_INPUT_REPORTS 64 /* the kernel's HIDRAW_BUFFER_SIZE */

struct hidraw {
    char port[32];
    unsigned interface_number;
    unsigned minor;
    char devnode[32];        /* /dev/hidrawN */
    char *syspath;           /* .../hidraw/hidrawN */
    char *hid_syspath;       /* .../0003:VVVV:PPPP.NNNN */
    char *interface_syspath; /* .../PORT:1.N */
    guint8 *report_descriptor;
    size_t report_descriptor_length;
    guint16 vendor, product;
    UMockdevIoctlBase *handler;
    int master;              /* the pty's master (umockdev's), where the doorbell bytes go */
    int slave;               /* the server's own handle on the pty's slave, to take doorbell bytes back */
    pthread_mutex_t lock;    /* guards the fields below */
    GQueue *inputs;          /* GBytes, oldest first */
    int clients;             /* open file descriptions: reports are only queued while someone listens */
    int gone;                /* unplugged: reads drain the queue then fail with EIO, writes fail with ENODEV */
};

static GPtrArray *all_hidraws; /* every hidraw ever plugged, freed at exit */
static unsigned next_hidraw_minor;

static void ring_doorbell(struct hidraw *hid) {
    ssize_t ignored = write(hid->master, "r", 1);
    (void)ignored;
}

static void take_doorbell(struct hidraw *hid) {
    char byte;
    ssize_t ignored = read(hid->slave, &byte, 1);
    (void)ignored;
}

static int hidraw_gone(struct hidraw *hid) {
    pthread_mutex_lock(&hid->lock);
    int gone = hid->gone;
    pthread_mutex_unlock(&hid->lock);
    return gone;
}

/* INPUT <port> <hex>: the device sends an input report on its interrupt IN endpoint. */
static void hidraw_input(struct hidraw *hid, const guint8 *report, size_t length) {
    pthread_mutex_lock(&hid->lock);
    if (hid->clients > 0 && !hid->gone && g_queue_get_length(hid->inputs) < MAX_INPUT_REPORTS) {
        g_queue_push_tail(hid->inputs, g_bytes_new(report, length));
        ring_doorbell(hid);
    }
    pthread_mutex_unlock(&hid->lock);
}

static void hidraw_read(struct hidraw *hid, UMockdevIoctlClient *client) {
    UMockdevIoctlData *buffer = umockdev_ioctl_client_get_arg(client);
    pthread_mutex_lock(&hid->lock);
    GBytes *report = g_queue_pop_head(hid->inputs);
    if (report) take_doorbell(hid);
    int gone = hid->gone;
    pthread_mutex_unlock(&hid->lock);
    if (!report) {
        /* Nothing queued: a gone device says EIO (and its doorbell stays rung, so poll keeps waking);
         * otherwise EAGAIN, which hidapi reads as "no report yet". */
        umockdev_ioctl_client_complete(client, -1, gone ? EIO : EAGAIN);
        return;
    }
    gsize length = 0;
    const guint8 *bytes = g_bytes_get_data(report, &length);
    if (length > (gsize)buffer->data_len) length = (gsize)buffer->data_len; /* read() truncates, as hidraw does */
    memcpy(buffer->data, bytes, length);
    g_bytes_unref(report);
    umockdev_ioctl_client_complete(client, (glong)length, 0);
}

static void hidraw_write(struct hidraw *hid, UMockdevIoctlClient *client) {
    UMockdevIoctlData *buffer = umockdev_ioctl_client_get_arg(client);
    size_t length = (size_t)buffer->data_len;
    if (length == 0) {
        umockdev_ioctl_client_complete(client, -1, EINVAL);
        return;
    }
    if (hidraw_gone(hid)) {
        umockdev_ioctl_client_complete(client, -1, ENODEV);
        return;
    }
    char *hex = hex_encode(buffer->data, length);
    char *rest = g_strdup_printf("%s %s", hid->port, hex);
    g_free(hex);
    enum reply_kind kind = ask_peer("HIDOUT", rest, NULL, NULL);
    g_free(rest);
    if (kind == REPLY_ACK) umockdev_ioctl_client_complete(client, (glong)length, 0);
    else umockdev_ioctl_client_complete(client, -1, reply_errno(kind));
}

/* HIDIOC[SG]{FEATURE,INPUT,OUTPUT}: SET_REPORT / GET_REPORT on endpoint 0 (HID 1.11 §7.2.1, §7.2.2), sent
 * to the peer in wire form. The buffer starts with the report id; for report id 0, as usbhid does, the
 * id byte is not sent and the answer lands after it. Returns the bytes transferred, id byte included. */
static void hidraw_report_request(struct hidraw *hid, UMockdevIoctlClient *client, gulong request) {
    unsigned number = _IOC_NR(request), size = _IOC_SIZE(request);
    int set = number == 0x06 || number == 0x09 || number == 0x0B;
    unsigned type = (number == 0x06 || number == 0x07) ? 3 : (number == 0x09 || number == 0x0A) ? 1 : 2;
    UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
    UMockdevIoctlData *buffer = size ? resolve(arg, 0, size) : NULL;
    if (!buffer) {
        umockdev_ioctl_client_complete(client, -1, size ? EFAULT : EINVAL);
        return;
    }
    if (hidraw_gone(hid)) {
        g_object_unref(buffer);
        umockdev_ioctl_client_complete(client, -1, ENODEV);
        return;
    }
    guint8 *bytes = buffer->data;
    unsigned id = bytes[0], skip = id == 0 ? 1 : 0, length = size - skip;
    guint8 setup[8] = {set ? 0x21 : 0xA1, set ? 0x09 : 0x01, id, type, hid->interface_number & 0xFF, 0, length & 0xFF,
                       length >> 8};
    int actual = 0;
    enum reply_kind kind = forward_control(hid->port, setup, bytes + skip, bytes + skip, &actual);
    g_object_unref(buffer);
    if (kind == REPLY_ACK) umockdev_ioctl_client_complete(client, actual + (int)skip, 0);
    else umockdev_ioctl_client_complete(client, -1, reply_errno(kind));
}

static gboolean on_hidraw_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer user_data) {
    (void)handler;
    struct hidraw *hid = user_data;
    gulong request = umockdev_ioctl_client_get_request(client);
    UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
    if (request == (gulong)HIDIOCGRDESCSIZE) {
        UMockdevIoctlData *size = resolve(arg, 0, sizeof(int));
        if (!size) return umockdev_ioctl_client_complete(client, -1, EFAULT), TRUE;
        *(int *)size->data = (int)hid->report_descriptor_length;
        g_object_unref(size);
        umockdev_ioctl_client_complete(client, 0, 0);
    } else if (request == (gulong)HIDIOCGRDESC) {
        UMockdevIoctlData *descriptor = resolve(arg, 0, sizeof(struct hidraw_report_descriptor));
        if (!descriptor) return umockdev_ioctl_client_complete(client, -1, EFAULT), TRUE;
        struct hidraw_report_descriptor *out = (struct hidraw_report_descriptor *)descriptor->data;
        if (out->size > HID_MAX_DESCRIPTOR_SIZE) {
            g_object_unref(descriptor);
            return umockdev_ioctl_client_complete(client, -1, EINVAL), TRUE;
        }
        size_t length = out->size < hid->report_descriptor_length ? out->size : hid->report_descriptor_length;
        memcpy(out->value, hid->report_descriptor, length);
        g_object_unref(descriptor);
        umockdev_ioctl_client_complete(client, 0, 0);
    } else if (request == (gulong)HIDIOCGRAWINFO) {
        UMockdevIoctlData *info = resolve(arg, 0, sizeof(struct hidraw_devinfo));
        if (!info) return umockdev_ioctl_client_complete(client, -1, EFAULT), TRUE;
        struct hidraw_devinfo *out = (struct hidraw_devinfo *)info->data;
        out->bustype = 3; /* BUS_USB */
        out->vendor = (__s16)hid->vendor;
        out->product = (__s16)hid->product;
        g_object_unref(info);
        umockdev_ioctl_client_complete(client, 0, 0);
    } else if (_IOC_TYPE(request) == 'H' && _IOC_NR(request) >= 0x06 && _IOC_NR(request) <= 0x0C &&
               _IOC_NR(request) != 0x08) {
        hidraw_report_request(hid, client, request);
    } else {
        umockdev_ioctl_client_complete(client, -1, ENOTTY);
    }
    return TRUE;
}

static gboolean on_hidraw_read(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer user_data) {
    (void)handler;
    hidraw_read(user_data, client);
    return TRUE;
}

static gboolean on_hidraw_write(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer user_data) {
    (void)handler;
    hidraw_write(user_data, client);
    return TRUE;
}

static void on_hidraw_open(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer user_data) {
    (void)handler, (void)client;
    struct hidraw *hid = user_data;
    pthread_mutex_lock(&hid->lock);
    hid->clients++;
    pthread_mutex_unlock(&hid->lock);
}

/* The last client gone: its unread reports go with it (the kernel frees a file's report list on close). */
static void on_hidraw_close(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, gpointer user_data) {
    (void)handler, (void)client;
    struct hidraw *hid = user_data;
    pthread_mutex_lock(&hid->lock);
    if (--hid->clients == 0) {
        GBytes *report;
        while ((report = g_queue_pop_head(hid->inputs))) {
            g_bytes_unref(report);
            take_doorbell(hid);
        }
    }
    pthread_mutex_unlock(&hid->lock);
}

/* The first interface descriptor of class 3 (HID) in a configuration, or 0. */
static unsigned hid_interface_number(const guint8 *descriptors, size_t length) {
    for (size_t at = 18; at + 1 < length && descriptors[at] >= 2; at += descriptors[at]) {
        if (descriptors[at + 1] == 4 && at + 5 < length && descriptors[at + 5] == 3) return descriptors[at + 2];
    }
    return 0;
}

/* The record of the interface, hid and hidraw devices under `usb_devpath`, children first, so the USB
 * device's own "add" (appended after this by the caller) is the last event a client sees. */
static struct hidraw *hidraw_new(const char *port, const char *usb_devpath, const guint8 *descriptors, size_t length,
                                 const guint8 *report_descriptor, size_t report_descriptor_length, const char *name,
                                 const char *serial, GString *record) {
    struct hidraw *hid = g_new0(struct hidraw, 1);
    snprintf(hid->port, sizeof hid->port, "%s", port);
    hid->interface_number = hid_interface_number(descriptors, length);
    hid->vendor = descriptors[8] | descriptors[9] << 8;
    hid->product = descriptors[10] | descriptors[11] << 8;
    hid->minor = next_hidraw_minor++; /* a new node for every plug, as the kernel does */
    snprintf(hid->devnode, sizeof hid->devnode, "/dev/hidraw%u", hid->minor);
    hid->report_descriptor = g_memdup2(report_descriptor, report_descriptor_length);
    hid->report_descriptor_length = report_descriptor_length;
    hid->master = hid->slave = -1;
    hid->inputs = g_queue_new();
    pthread_mutex_init(&hid->lock, NULL);
    hid->interface_syspath = g_strdup_printf("%s/%s:1.%u", usb_devpath, port, hid->interface_number);
    hid->hid_syspath = g_strdup_printf("%s/0003:%04X:%04X.%04X", hid->interface_syspath, hid->vendor, hid->product,
                                       hid->minor + 1);
    hid->syspath = g_strdup_printf("%s/hidraw/hidraw%u", hid->hid_syspath, hid->minor);

    g_string_append_printf(record, "P: %s\nE: SUBSYSTEM=hidraw\nE: DEVNAME=%s\nL: device=../..\nN: hidraw%u\n\n",
                           hid->syspath, hid->devnode, hid->minor);
    char *descriptor_hex = hex_encode(report_descriptor, report_descriptor_length);
    g_string_append_printf(record,
                           "P: %s\nE: SUBSYSTEM=hid\nE: DRIVER=hid-generic\nE: HID_ID=0003:%08X:%08X\nE: HID_NAME=%s\n"
                           "E: HID_PHYS=usb-dfuhop-%s/input%u\nE: HID_UNIQ=%s\nH: report_descriptor=%s\n\n",
                           hid->hid_syspath, hid->vendor, hid->product, name, port, hid->interface_number, serial,
                           descriptor_hex);
    g_free(descriptor_hex);
    g_string_append_printf(record,
                           "P: %s\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\nE: INTERFACE=3/0/0\n"
                           "A: bInterfaceNumber=%02x\\n\nA: bInterfaceClass=03\\n\nA: bAlternateSetting= 0\\n\n\n",
                           hid->interface_syspath, hid->interface_number);
    return hid;
}

/* Before the records go into the testbed: the handler that answers the node. */
static int hidraw_attach(struct hidraw *hid) {
    hid->handler = umockdev_ioctl_base_new();
    g_signal_connect(hid->handler, "handle-ioctl", G_CALLBACK(on_hidraw_ioctl), hid);
    g_signal_connect(hid->handler, "handle-read", G_CALLBACK(on_hidraw_read), hid);
    g_signal_connect(hid->handler, "handle-write", G_CALLBACK(on_hidraw_write), hid);
    g_signal_connect(hid->handler, "client-connected", G_CALLBACK(on_hidraw_open), hid);
    g_signal_connect(hid->handler, "client-vanished", G_CALLBACK(on_hidraw_close), hid);
    GError *error = NULL;
    if (!umockdev_testbed_attach_ioctl(testbed, hid->devnode, hid->handler, &error)) {
        fprintf(stderr, "dfuhop-usb-server: cannot attach to %s: %s\n", hid->devnode, error ? error->message : "unknown");
        if (error) g_error_free(error);
        return -1;
    }
    return 0;
}

/* Stops answering the node (clients already connected keep their connection to the handler). */
static void hidraw_detach(struct hidraw *hid) {
    GError *error = NULL;
    if (hid->handler && !umockdev_testbed_detach_ioctl(testbed, hid->devnode, &error) && error) {
        fprintf(stderr, "dfuhop-usb-server: detach %s: %s\n", hid->devnode, error->message);
        g_error_free(error);
    }
}

/* After the records are in the testbed: the pty umockdev made for the node, for the doorbell. */
static void hidraw_open_pty(struct hidraw *hid) {
    hid->master = umockdev_testbed_get_dev_fd(testbed, hid->devnode);
    char *slave_name = hid->master >= 0 ? ptsname(hid->master) : NULL;
    hid->slave = slave_name ? open(slave_name, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) : -1;
    if (hid->slave < 0) fprintf(stderr, "dfuhop-usb-server: no pty behind %s\n", hid->devnode);
}

/* Disconnect (kernel order: hidraw, hid, interface; the USB device follows). Clients that still hold
 * the node get their queued reports, then EIO; the doorbell stays rung so that their poll() says so. */
static void hidraw_remove(struct hidraw *hid) {
    pthread_mutex_lock(&hid->lock);
    hid->gone = 1;
    ring_doorbell(hid);
    pthread_mutex_unlock(&hid->lock);
    const char *paths[] = {hid->syspath, hid->hid_syspath, hid->interface_syspath};
    for (size_t i = 0; i < 3; i++) {
        char *syspath = g_strdup_printf("/sys%s", paths[i]);
        umockdev_testbed_uevent(testbed, syspath, "remove");
        umockdev_testbed_remove_device(testbed, syspath);
        g_free(syspath);
    }
    hidraw_detach(hid);
}

static void hidraw_free(gpointer data) {
    struct hidraw *hid = data;
    if (hid->slave >= 0) close(hid->slave);
    if (hid->handler) g_object_unref(hid->handler);
    GBytes *report;
    while ((report = g_queue_pop_head(hid->inputs))) g_bytes_unref(report);
    g_queue_free(hid->inputs);
    g_free(hid->report_descriptor);
    g_free(hid->syspath);
    g_free(hid->hid_syspath);
    g_free(hid->interface_syspath);
    pthread_mutex_destroy(&hid->lock);
    g_free(hid);
}

/* Adds one usb_device to the testbed with umockdev's record format, so that the binary
 * "descriptors" attribute exists before the "add" uevent goes out (a client reacting to the event
 * must find the whole device). `attributes` holds "name=value" lines' contents. Returns the syspath. */
static char *add_usb_device(const char *devpath, unsigned bus, unsigned devnum, const guint8 *descriptors, size_t length,
                            GPtrArray *attributes, const GString *children) {
    const guint8 *d = descriptors;
    GString *record = g_string_new(children ? children->str : NULL);
    g_string_append_printf(record, "P: %s\n", devpath);
    g_string_append_printf(record, "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\n");
    g_string_append_printf(record, "E: DEVNAME=/dev/bus/usb/%03u/%03u\nE: BUSNUM=%03u\nE: DEVNUM=%03u\n", bus, devnum, bus, devnum);
    g_string_append_printf(record, "E: PRODUCT=%x/%x/%x\n", d[8] | d[9] << 8, d[10] | d[11] << 8, d[12] | d[13] << 8);
    /* sysfs attribute values end with a newline, as the kernel writes them ("\\n" in the record format). */
    g_string_append_printf(record, "A: idVendor=%02x%02x\\n\nA: idProduct=%02x%02x\\n\nA: bcdDevice=%02x%02x\\n\n", d[9], d[8],
                           d[11], d[10], d[13], d[12]);
    g_string_append_printf(record, "A: bDeviceClass=%02x\\n\nA: bNumConfigurations=%u\\n\nA: bConfigurationValue=1\\n\n", d[4],
                           d[17]);
    g_string_append_printf(record, "A: busnum=%u\\n\nA: devnum=%u\\n\nA: speed=%s\\n\n", bus, devnum, d[4] == 9 ? "480" : "12");
    for (guint i = 0; attributes && i < attributes->len; i++)
        g_string_append_printf(record, "A: %s\\n\n", (char *)attributes->pdata[i]);
    g_string_append_printf(record, "N: bus/usb/%03u/%03u\n", bus, devnum);
    char *hex = hex_encode(descriptors, length);
    g_string_append_printf(record, "H: descriptors=%s\n\n", hex);
    g_free(hex);
    GError *error = NULL;
    gboolean added = umockdev_testbed_add_from_string(testbed, record->str, &error);
    g_string_free(record, TRUE);
    if (!added) {
        fprintf(stderr, "dfuhop-usb-server: umockdev refused %s: %s\n", devpath, error ? error->message : "unknown");
        if (error) g_error_free(error);
        return NULL;
    }
    return g_strdup_printf("/sys%s", devpath);
}

/* A minimal hub (USB 2.0 §11.23) so that libusb finds the parents of a device and reports its whole
 * port path. Created on demand, never removed. Returns its devpath ("/devices/usb1/1-3"). */
static const char *ensure_hub(unsigned bus, const char *name) {
    char *existing = g_hash_table_lookup(hubs, name);
    if (existing) return existing;
    char *devpath;
    if (strncmp(name, "usb", 3) == 0) {
        devpath = g_strdup_printf("/devices/%s", name);
    } else {
        char parent_name[32];
        snprintf(parent_name, sizeof parent_name, "%s", name);
        char *cut = strrchr(parent_name, '.');
        if (cut) *cut = '\0';
        else snprintf(parent_name, sizeof parent_name, "usb%u", bus);
        devpath = g_strdup_printf("%s/%s", ensure_hub(bus, parent_name), name);
    }
    static const guint8 hub_descriptors[] = {
        18, 1, 0x00, 0x02, 9, 0, 1, 64, 0x6b, 0x1d, 0x02, 0x00, 0x00, 0x01, 0, 0, 0, 1,
        9, 2, 25, 0, 1, 1, 0, 0xE0, 0,
        9, 4, 0, 0, 1, 9, 0, 0, 0,
        7, 5, 0x81, 3, 4, 0, 12,
    };
    if (next_devnum[bus] < 2) next_devnum[bus] = 2;
    unsigned devnum = strncmp(name, "usb", 3) == 0 ? 1 : next_devnum[bus]++;
    char *syspath = add_usb_device(devpath, bus, devnum, hub_descriptors, sizeof hub_descriptors, NULL, NULL);
    if (!syspath) die("cannot create a hub in the testbed");
    g_free(syspath);
    g_hash_table_insert(hubs, g_strdup(name), devpath);
    return devpath;
}

/* PLUG <port> <descriptors-hex> [key=value ...] */
static void plug(char **words, int count) {
    if (count < 3) {
        send_line("ERROR PLUG needs a port path and descriptors");
        return;
    }
    const char *port = words[1];
    unsigned bus = 0;
    char rest_of_path[32];
    if (strlen(port) >= sizeof rest_of_path || sscanf(port, "%u-%31s", &bus, rest_of_path) != 2 || bus == 0 || bus > 255) {
        send_line("ERROR PLUG %s: not a port path like 1-2.3", port);
        return;
    }
    guint8 *descriptors = NULL;
    long length = hex_decode(words[2], &descriptors);
    if (length < 18 + 9 || descriptors[1] != 1) {
        g_free(descriptors);
        send_line("ERROR PLUG %s: descriptors must be a device descriptor followed by configurations", port);
        return;
    }
    pthread_mutex_lock(&devices_lock);
    struct device *dev = NULL;
    for (int i = 0; i < MAX_DEVICES; i++) {
        if (devices[i].in_use && strcmp(devices[i].port, port) == 0) {
            pthread_mutex_unlock(&devices_lock);
            g_free(descriptors);
            send_line("ERROR PLUG %s: a device is already plugged there", port);
            return;
        }
        if (!devices[i].in_use && !dev) dev = &devices[i];
    }
    if (!dev) {
        pthread_mutex_unlock(&devices_lock);
        g_free(descriptors);
        send_line("ERROR PLUG %s: too many devices", port);
        return;
    }
    memset(dev, 0, sizeof *dev);
    dev->in_use = 1;
    snprintf(dev->port, sizeof dev->port, "%s", port);
    pthread_mutex_unlock(&devices_lock);

    char parent_name[32];
    snprintf(parent_name, sizeof parent_name, "%s", port);
    char *cut = strrchr(parent_name, '.');
    if (cut) *cut = '\0';
    else snprintf(parent_name, sizeof parent_name, "usb%u", bus);
    const char *parent = ensure_hub(bus, parent_name);

    dev->bus = bus;
    if (next_devnum[bus] < 2) next_devnum[bus] = 2;
    dev->devnum = next_devnum[bus]++;
    if (next_devnum[bus] > 127) next_devnum[bus] = 2;
    snprintf(dev->devnode, sizeof dev->devnode, "/dev/bus/usb/%03u/%03u", bus, dev->devnum);

    /* The handler goes first: the "add" uevent below may make a client open the node at once. */
    dev->handler = umockdev_ioctl_base_new();
    g_signal_connect(dev->handler, "handle-ioctl", G_CALLBACK(on_ioctl), dev);
    GError *error = NULL;
    if (!umockdev_testbed_attach_ioctl(testbed, dev->devnode, dev->handler, &error)) {
        send_line("ERROR PLUG %s: cannot attach the ioctl handler: %s", port, error ? error->message : "unknown");
        if (error) g_error_free(error);
        dev->in_use = 0;
        g_free(descriptors);
        return;
    }

    /* Optional sysfs string attributes (what udev shows as ID_SERIAL etc.), and the HID interface. */
    GPtrArray *attributes = g_ptr_array_new_with_free_func(g_free);
    char *strings[3] = {NULL, NULL, NULL}; /* manufacturer, product, serial */
    guint8 *report_descriptor = NULL;
    long report_descriptor_length = -1;
    for (int i = 3; i < count; i++) {
        char *equals = strchr(words[i], '=');
        if (!equals) continue;
        *equals = '\0';
        if (strcmp(words[i], "hid") == 0) {
            g_free(report_descriptor);
            report_descriptor_length = hex_decode(equals + 1, &report_descriptor);
            continue;
        }
        int which = strcmp(words[i], "manufacturer") == 0 ? 0 : strcmp(words[i], "product") == 0 ? 1
                  : strcmp(words[i], "serial") == 0        ? 2 : -1;
        if (which < 0) continue;
        char *value = percent_decode(equals + 1);
        g_ptr_array_add(attributes, g_strdup_printf("%s=%s", words[i], value));
        g_free(strings[which]);
        strings[which] = value;
    }
    char *devpath = g_strdup_printf("%s/%s", parent, port);
    GString *children = NULL;
    if (report_descriptor_length > 0 && report_descriptor_length <= HID_MAX_DESCRIPTOR_SIZE) {
        /* HID_NAME as usbhid makes it: manufacturer and product, space-separated. */
        char *name = g_strjoin(" ", strings[0] ? strings[0] : "", strings[1] ? strings[1] : "", NULL);
        children = g_string_new(NULL);
        dev->hid = hidraw_new(port, devpath, descriptors, (size_t)length, report_descriptor, (size_t)report_descriptor_length,
                              g_strstrip(name), strings[2] ? strings[2] : "", children);
        g_free(name);
        if (!all_hidraws) all_hidraws = g_ptr_array_new_with_free_func(hidraw_free);
        g_ptr_array_add(all_hidraws, dev->hid);
        if (hidraw_attach(dev->hid) < 0) send_line("ERROR PLUG %s: cannot answer %s", port, dev->hid->devnode);
    } else if (report_descriptor_length >= 0) {
        send_line("ERROR PLUG %s: hid= needs a report descriptor of 1 to %d bytes; plugging without HID", port,
                  HID_MAX_DESCRIPTOR_SIZE);
    }
    dev->syspath = add_usb_device(devpath, bus, dev->devnum, descriptors, (size_t)length, attributes, children);
    if (children) g_string_free(children, TRUE);
    g_free(devpath);
    g_ptr_array_free(attributes, TRUE);
    g_free(descriptors);
    g_free(report_descriptor);
    for (int i = 0; i < 3; i++) g_free(strings[i]);
    if (!dev->syspath) {
        send_line("ERROR PLUG %s: umockdev refused the device", port);
        if (dev->hid) hidraw_detach(dev->hid);
        dev->hid = NULL;
        GError *ignored = NULL;
        umockdev_testbed_detach_ioctl(testbed, dev->devnode, &ignored);
        if (ignored) g_error_free(ignored);
        g_object_unref(dev->handler);
        dev->in_use = 0;
        return;
    }
    if (dev->hid) {
        hidraw_open_pty(dev->hid);
        send_line("PLUGGED %s %s %s %s", port, dev->devnode, dev->syspath, dev->hid->devnode);
    } else {
        send_line("PLUGGED %s %s %s", port, dev->devnode, dev->syspath);
    }
}

static struct device *find_device(const char *port) {
    for (int i = 0; i < MAX_DEVICES; i++)
        if (devices[i].in_use && strcmp(devices[i].port, port) == 0) return &devices[i];
    return NULL;
}

static void unplug_device(struct device *dev) {
    if (dev->hid) hidraw_remove(dev->hid);
    dev->hid = NULL;
    umockdev_testbed_uevent(testbed, dev->syspath, "remove");
    umockdev_testbed_remove_device(testbed, dev->syspath);
    GError *error = NULL;
    if (!umockdev_testbed_detach_ioctl(testbed, dev->devnode, &error) && error) {
        fprintf(stderr, "dfuhop-usb-server: detach %s: %s\n", dev->devnode, error->message);
        g_error_free(error);
    }
    g_object_unref(dev->handler);
    g_free(dev->syspath);
    pthread_mutex_lock(&devices_lock);
    dev->in_use = 0;
    pthread_mutex_unlock(&devices_lock);
}

static void unplug(char **words, int count) {
    if (count < 2) {
        send_line("ERROR UNPLUG needs a port path");
        return;
    }
    struct device *dev = find_device(words[1]);
    if (!dev) {
        send_line("ERROR UNPLUG %s: nothing is plugged there", words[1]);
        return;
    }
    unplug_device(dev);
    send_line("UNPLUGGED %s", words[1]);
}

/* INPUT <port> <report-hex> */
static void input(char **words, int count) {
    if (count < 3) {
        send_line("ERROR INPUT needs a port path and a report");
        return;
    }
    struct device *dev = find_device(words[1]);
    if (!dev || !dev->hid) {
        send_line("ERROR INPUT %s: no HID device is plugged there", words[1]);
        return;
    }
    guint8 *report = NULL;
    long length = hex_decode(words[2], &report);
    if (length <= 0) {
        g_free(report);
        send_line("ERROR INPUT %s: the report must be 1 or more bytes of hex", words[1]);
        return;
    }
    hidraw_input(dev->hid, report, (size_t)length);
    g_free(report);
}

/* ---------- main loop: stdin lines and termination signals ---------- */

static int signal_pipe[2];

static void on_signal(int number) {
    (void)number;
    ssize_t ignored = write(signal_pipe[1], "x", 1);
    (void)ignored;
}

/* Runs the server under the umockdev preload: re-executes itself with LD_PRELOAD set if needed. */
static void ensure_preloaded(char **argv) {
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "libumockdev-preload")) return;
    char *value = preload && *preload ? g_strdup_printf("%s:%s", PRELOAD, preload) : g_strdup(PRELOAD);
    setenv("LD_PRELOAD", value, 1);
    g_free(value);
    execv("/proc/self/exe", argv);
    die("cannot re-execute under the umockdev preload");
}

static int handle_line(char *line) {
    char *words[64];
    int count = 0;
    for (char *save = NULL, *word = strtok_r(line, " \t\r", &save); word && count < 64; word = strtok_r(NULL, " \t\r", &save))
        words[count++] = word;
    if (count == 0) return 1;
    if (strcmp(words[0], "REPLY") == 0 && count >= 3) {
        deliver_reply(strtoul(words[1], NULL, 10), words[2], count >= 4 ? words[3] : NULL);
    } else if (strcmp(words[0], "PLUG") == 0) {
        plug(words, count);
    } else if (strcmp(words[0], "UNPLUG") == 0) {
        unplug(words, count);
    } else if (strcmp(words[0], "INPUT") == 0) {
        input(words, count);
    } else if (strcmp(words[0], "QUIT") == 0) {
        return 0;
    } else {
        send_line("ERROR unknown message '%s'", words[0]);
    }
    return 1;
}

int main(int argc, char **argv) {
    (void)argc;
    ensure_preloaded(argv);
    prctl(PR_SET_TIMERSLACK, 1); /* many small transfers: ~2x faster (emulated-usb/README.md) */
    if (pipe(signal_pipe) != 0) die("pipe");
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    hubs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    testbed = umockdev_testbed_new();
    char *root = umockdev_testbed_get_root_dir(testbed);
    send_line("READY %d %s", PROTOCOL_VERSION, root);
    g_free(root);

    GString *pending = g_string_new(NULL);
    char chunk[65536];
    int running = 1;
    while (running) {
        struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {signal_pipe[0], POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[1].revents) break;
        if (!fds[0].revents) continue;
        ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n <= 0) break; /* the peer went away */
        g_string_append_len(pending, chunk, n);
        char *newline;
        while (running && (newline = memchr(pending->str, '\n', pending->len))) {
            size_t line_length = (size_t)(newline - pending->str);
            char *line = g_strndup(pending->str, line_length);
            g_string_erase(pending, 0, (gssize)line_length + 1);
            running = handle_line(line);
            g_free(line);
        }
    }

    /* Fail whatever is still waiting for the peer, then take everything down (removes the testbed dir). */
    pthread_mutex_lock(&exchange.state);
    if (exchange.waiting && exchange.kind == REPLY_NONE) {
        exchange.kind = REPLY_NODEV;
        pthread_cond_signal(&exchange.arrived);
    }
    pthread_mutex_unlock(&exchange.state);
    for (int i = 0; i < MAX_DEVICES; i++)
        if (devices[i].in_use) unplug_device(&devices[i]);
    g_object_unref(testbed);
    if (all_hidraws) g_ptr_array_free(all_hidraws, TRUE);
    g_hash_table_destroy(hubs);
    g_string_free(pending, TRUE);
    return 0;
}
