/* loadgen_payload: the messages bench/loadgen sends, made once before the
 * run, and with deflate their compressed forms. */
#ifndef LOADGEN_PAYLOAD_H
#define LOADGEN_PAYLOAD_H

#include <stddef.h>

/* Variants a connection cycles through with deflate or JSON, so the
 * server's compressor does not see one message repeated. */
#define LG_NVARIANTS 256

/* Variant v as sent uncompressed, and (deflate only) as one raw deflate
 * block without the 00 00 ff ff tail. lg_nvariants of them are made. */
extern unsigned char *lg_plain[LG_NVARIANTS];
extern size_t lg_plain_len[LG_NVARIANTS];
extern unsigned char *lg_zipped[LG_NVARIANTS];
extern size_t lg_zipped_len[LG_NVARIANTS];
extern int lg_nvariants;

/* Makes the variants: `size` bytes of letters (text) or random bytes
 * (binary), or with json a chat message of about `size` bytes. With zip
 * (permessage-deflate) or json there are LG_NVARIANTS of them, else one;
 * with zip each is compressed too. Dies on failure. */
void lg_payload_make(size_t size, int binary, int json, int zip);

#endif
