/*
 * Host test of the device-side handler against the shared vectors (protocols/test-vectors/hid-app.txt),
 * the same file the Swift tests read. Built and run by `make check` with the host's gcc, under
 * AddressSanitizer and UndefinedBehaviorSanitizer; then a sweep of hostile reports.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfuhop/app_protocol.h"
#include "dfuhop/crc32.h"

#define MAX_TOKENS 32
#define MAX_BYTES 256
#define MAX_INPUTS 256

typedef struct {
    char name[96];
    uint8_t bytes[MAX_BYTES];
    size_t length;
} input;

static dfh_device fixture;
static uint8_t *flash;
static input inputs[MAX_INPUTS];
static size_t input_count;
static int failures, checked, skipped;
static const char *path;
static int line_number;

static void fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s:%d: ", path, line_number);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    failures++;
}

static void print_hex(const char *label, const uint8_t *bytes, size_t length)
{
    fprintf(stderr, "    %s ", label);
    for (size_t i = 0; i < length; i++) fprintf(stderr, "%02X", bytes[i]);
    fputc('\n', stderr);
}

static int parse_number(const char *text, unsigned long long *value)
{
    char *end = NULL;
    errno = 0;
    *value = strtoull(text, &end, 0);
    return errno == 0 && end != text && *end == '\0';
}

/* HEX, HEX~64 or `empty` (see the vector file's header). */
static int parse_hex(const char *text, uint8_t *bytes, size_t capacity, size_t *length)
{
    *length = 0;
    if (strcmp(text, "empty") == 0) return 1;
    size_t digits = strcspn(text, "~");
    if (digits % 2 != 0 || digits / 2 > capacity) return 0;
    for (size_t i = 0; i < digits; i += 2) {
        if (!isxdigit((unsigned char)text[i]) || !isxdigit((unsigned char)text[i + 1])) return 0;
        char pair[3] = {text[i], text[i + 1], 0};
        bytes[(*length)++] = (uint8_t)strtoul(pair, NULL, 16);
    }
    if (text[digits] == '~') {
        unsigned long long total;
        if (!parse_number(text + digits + 1, &total) || total > capacity || total < *length) return 0;
        while (*length < total) bytes[(*length)++] = 0;
    }
    return 1;
}

static const char *field(char **tokens, int count, const char *key)
{
    size_t key_length = strlen(key);
    for (int i = 0; i < count; i++)
        if (strncmp(tokens[i], key, key_length) == 0 && tokens[i][key_length] == '=') return tokens[i] + key_length + 1;
    return NULL;
}

static const input *find_input(const char *name)
{
    for (size_t i = 0; i < input_count; i++)
        if (strcmp(inputs[i].name, name) == 0) return &inputs[i];
    return NULL;
}

static const char *status_name(uint8_t status)
{
    static const char *names[] = {"OK", "UNKNOWN_COMMAND", "BAD_LENGTH", "BAD_ARGUMENT", "BAD_ADDRESS",
                                  "BAD_MAGIC", "WRONG_UNIT", "UNSUPPORTED_VERSION", "NO_DESCRIPTOR", "BUSY"};
    return status < sizeof names / sizeof names[0] ? names[status] : "?";
}

static void apply_fixture(const char *key, const char *value)
{
    unsigned long long number = 0;
    if (strcmp(key, "uid") == 0) {
        size_t length;
        if (!parse_hex(value, fixture.uid, sizeof fixture.uid, &length) || length != sizeof fixture.uid) fail("bad uid %s", value);
        return;
    }
    if (!parse_number(value, &number)) {
        fail("fixture %s: not a number: %s", key, value);
        return;
    }
    if (strcmp(key, "flash-address") == 0) fixture.flash_address = (uint32_t)number;
    else if (strcmp(key, "flash-size") == 0) {
        fixture.flash_size = (uint32_t)number;
        free(flash);
        flash = malloc(fixture.flash_size);
        if (!flash) {
            fail("out of memory");
            exit(2);
        }
        memset(flash, 0xFF, fixture.flash_size);
        fixture.flash = flash;
    } else if (strcmp(key, "image-base") == 0) fixture.image_base = (uint32_t)number;
    else if (strcmp(key, "dev-id") == 0) fixture.dev_id = (uint16_t)number;
    else if (strcmp(key, "rev-id") == 0) fixture.rev_id = (uint16_t)number;
    else if (strcmp(key, "reset-delay-ms") == 0) fixture.reset_delay_ms = (uint16_t)number;
    else if (strcmp(key, "bootloader-blocked") == 0) fixture.bootloader_blocked = (uint8_t)number;
    else fail("unknown fixture key %s", key);
}

/* The typed fields a request line names must sit where this device reads them (spec §5). */
static void check_request_fields(const uint8_t *bytes, size_t length, char **tokens, int count)
{
    static const struct { const char *key; size_t offset, width; } layout[] = {
        {"seq", 2, 1}, {"offset", 5, 1}, {"length", 6, 1}, {"address", 5, 4}, {"size", 9, 4},
        {"count", 13, 1}, {"magic", 5, 4}, {"nonce", 9, 4},
    };
    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++) {
        const char *text = field(tokens, count, layout[i].key);
        unsigned long long expected;
        if (!text) continue;
        if (!parse_number(text, &expected) || layout[i].offset + layout[i].width > length) {
            fail("field %s=%s does not fit the request", layout[i].key, text);
            continue;
        }
        unsigned long long actual = 0;
        for (size_t b = 0; b < layout[i].width; b++) actual |= (unsigned long long)bytes[layout[i].offset + b] << (8 * b);
        if (actual != expected) fail("%s: the request holds 0x%llX, the vector says 0x%llX", layout[i].key, actual, expected);
    }
    const char *uid = field(tokens, count, "uid");
    uint8_t uid_bytes[12];
    size_t uid_length;
    if (uid && (!parse_hex(uid, uid_bytes, sizeof uid_bytes, &uid_length) || length < 25 || memcmp(bytes + 13, uid_bytes, 12) != 0))
        fail("uid=%s is not at bytes 13..24 of the request", uid);
    const char *command = field(tokens, count, "cmd");
    static const struct { const char *name; uint8_t code; } commands[] = {
        {"GET_INFO", DFH_CMD_GET_INFO}, {"GET_DESCRIPTOR", DFH_CMD_GET_DESCRIPTOR}, {"GET_SECTOR_CRCS", DFH_CMD_GET_SECTOR_CRCS},
        {"CHECK_IMAGE", DFH_CMD_CHECK_IMAGE}, {"ENTER_BOOTLOADER", DFH_CMD_ENTER_BOOTLOADER},
    };
    int known = 0;
    for (size_t i = 0; command && i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(command, commands[i].name) == 0) {
            known = 1;
            if (bytes[3] != commands[i].code) fail("cmd=%s but the request holds 0x%02X", command, bytes[3]);
        }
    if (!known) fail("request without a known cmd= field");
}

static void run_response(char **tokens, int count)
{
    const char *to = field(tokens, count, "to");
    const input *request = to ? find_input(to) : NULL;
    if (!request) {
        fail("response %s answers an unknown request %s", tokens[1], to ? to : "(none)");
        return;
    }
    uint8_t actual[DFH_REPORT_LENGTH];
    memset(actual, 0xAA, sizeof actual);
    dfh_outcome outcome = dfh_handle_request(&fixture, request->bytes, request->length, actual);
    checked++;
    if (strcmp(tokens[2], "none") == 0) {
        if (outcome != DFH_NO_REPLY) {
            fail("%s: the device answered, the vector says it must not", tokens[1]);
            print_hex("actual  ", actual, sizeof actual);
        }
        return;
    }
    uint8_t expected[MAX_BYTES];
    size_t length;
    if (!parse_hex(tokens[2], expected, sizeof expected, &length)) {
        fail("%s: bad hex", tokens[1]);
        return;
    }
    if (outcome == DFH_NO_REPLY || length != DFH_REPORT_LENGTH || memcmp(actual, expected, length) != 0) {
        fail("%s: the device's answer differs", tokens[1]);
        print_hex("expected", expected, length);
        print_hex("actual  ", actual, outcome == DFH_NO_REPLY ? 0 : sizeof actual);
    }
    const char *action = field(tokens, count, "action");
    int enters = outcome == DFH_REPLY_THEN_ENTER_BOOTLOADER;
    if (enters != (action && strcmp(action, "enter-bootloader") == 0))
        fail("%s: the device %s enter the bootloader, the vector says otherwise", tokens[1], enters ? "would" : "would not");
}

static void run_line(char *line)
{
    char *tokens[MAX_TOKENS];
    int count = 0;
    for (char *token = strtok(line, " \r\n"); token && count < MAX_TOKENS; token = strtok(NULL, " \r\n")) tokens[count++] = token;
    if (count == 0 || tokens[0][0] == '#') return;
    const char *kind = tokens[0];

    if (strcmp(kind, "fixture") == 0 && count == 3) {
        apply_fixture(tokens[1], tokens[2]);
    } else if (strcmp(kind, "erase") == 0) {
        if (flash) memset(flash, 0xFF, fixture.flash_size);
    } else if (strcmp(kind, "flash") == 0 && count == 3) {
        unsigned long long address;
        uint8_t bytes[MAX_BYTES];
        size_t length;
        if (!flash || !parse_number(tokens[1], &address) || !parse_hex(tokens[2], bytes, sizeof bytes, &length) ||
            address < fixture.flash_address || address + length > (unsigned long long)fixture.flash_address + fixture.flash_size) {
            fail("bad flash line");
            return;
        }
        memcpy(flash + (address - fixture.flash_address), bytes, length);
    } else if ((strcmp(kind, "request") == 0 || strcmp(kind, "device-input") == 0) && count >= 3) {
        if (input_count == MAX_INPUTS) {
            fail("more than %d requests", MAX_INPUTS);
            return;
        }
        input *in = &inputs[input_count++];
        snprintf(in->name, sizeof in->name, "%s", tokens[1]);
        if (!parse_hex(tokens[2], in->bytes, sizeof in->bytes, &in->length)) fail("%s: bad hex", tokens[1]);
        if (strcmp(kind, "request") == 0) {
            check_request_fields(in->bytes, in->length, tokens, count);
            return;
        }
        const char *decodes = field(tokens, count, "decodes");
        uint8_t answer[DFH_REPORT_LENGTH];
        dfh_outcome outcome = dfh_handle_request(&fixture, in->bytes, in->length, answer);
        checked++;
        if (!decodes) fail("%s: device-input without decodes=", tokens[1]);
        else if (strcmp(decodes, "ignore") == 0) {
            if (outcome != DFH_NO_REPLY) fail("%s: answered, must be ignored", tokens[1]);
        } else if (outcome == DFH_NO_REPLY || strcmp(status_name(answer[4]), decodes) != 0) {
            fail("%s: rejected with %s, the vector says %s", tokens[1], outcome == DFH_NO_REPLY ? "nothing" : status_name(answer[4]), decodes);
        }
    } else if (strcmp(kind, "response") == 0 && count >= 3) {
        run_response(tokens, count);
    } else if (strcmp(kind, "reply") == 0 || strcmp(kind, "bad-reply") == 0) {
        skipped++; /* host-side only */
    } else {
        fail("unknown or incomplete line: %s", kind);
    }
}

/* Hostile reports of every length, random contents: the handler must answer or ignore, never fault. */
static void sweep_hostile_reports(void)
{
    uint32_t state = 0x12345678u;
    uint8_t request[DFH_REPORT_LENGTH], response[DFH_REPORT_LENGTH];
    static const uint8_t commands[] = {0x01, 0x02, 0x03, 0x04, 0x10, 0x7F};
    for (int round = 0; round < 200000; round++) {
        size_t length = (size_t)round % (DFH_REPORT_LENGTH + 1);
        for (size_t i = 0; i < length; i++) {
            state = state * 1664525u + 1013904223u;
            request[i] = (uint8_t)(state >> 24);
        }
        /* Mostly plausible headers, so the commands' own checks are reached. */
        if (length >= 5 && round % 4 != 0) {
            request[0] = DFH_REQUEST_REPORT_ID;
            request[1] = DFH_PROTOCOL_MAJOR;
            request[3] = commands[(size_t)round % sizeof commands];
            request[4] = (uint8_t)(request[4] % (DFH_MAX_REQUEST_PAYLOAD + 2));
        }
        dfh_outcome outcome = dfh_handle_request(&fixture, request, length, response);
        if (outcome != DFH_NO_REPLY && (response[0] != DFH_RESPONSE_REPORT_ID || response[5] > DFH_MAX_RESPONSE_PAYLOAD)) {
            fail("hostile report %d produced a malformed answer", round);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s protocols/test-vectors/hid-app.txt\n", argv[0]);
        return 2;
    }
    path = argv[1];
    FILE *file = fopen(path, "r");
    if (!file) {
        perror(path);
        return 2;
    }
    const uint8_t check[] = "123456789";
    if (dfh_crc32_end(dfh_crc32_update(dfh_crc32_begin(), check, 9)) != 0xCBF43926u) fail("CRC-32 of \"123456789\" is not 0xCBF43926");

    char line[8192];
    while (fgets(line, sizeof line, file)) {
        line_number++;
        if (!strchr(line, '\n') && !feof(file)) {
            fail("line too long");
            break;
        }
        run_line(line);
    }
    fclose(file);
    if (checked == 0) fail("no vector was checked");
    line_number = 0;
    sweep_hostile_reports();
    free(flash);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("hid-app vectors: %d device checks passed, %d host-only lines skipped; 200000 hostile reports handled\n", checked, skipped);
    return 0;
}
