// Text inputs (prompts, documents, task files) refuse NUL: the C strings made of a line
// would end at it silently. Finds the line of the first NUL, a zero byte or, in JSON, a
// \u0000 escape (which cJSON decodes into a string that ends there).
#ifndef BD_TEXT_H
#define BD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

// 1-based line (counting "\n") of the first NUL in text[0..n): a zero byte, or with json
// also a \u0000 escape; 0 if there is none.
long long bd_text_nul_line(const char *text, size_t n, bool json);

#endif
