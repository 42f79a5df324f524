# Name checks for the schema: no control character in a Struct's names.
# Its own small extension (the schema needs it; the kernel does not).

from cpython.unicode cimport PyUnicode_KIND, PyUnicode_DATA, PyUnicode_READ, PyUnicode_GET_LENGTH


cdef inline bint _has_control(str text):
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    for i in range(n):
        if PyUnicode_READ(kind, data, i) < 0x20:
            return True
    return False


def first_control_char(obj, tuple fields):
    """``(path, value)`` of the first name in ``fields`` of ``obj`` holding a
    control character, or None. A field is a str, None, or a list of str and
    ``{name, version}`` Structs. One pass in C: the slot schema checks its
    names with this instead of a regular expression per string."""
    cdef Py_ssize_t j
    cdef str field
    for field in fields:
        value = getattr(obj, field)
        if value is None:
            continue
        if isinstance(value, str):
            if _has_control(value):
                return f"$.{field}", value
        elif isinstance(value, list):
            for j in range(len(<list>value)):
                item = (<list>value)[j]
                if isinstance(item, str):
                    if _has_control(item):
                        return f"$.{field}[{j}]", item
                else:
                    for sub in ("name", "version"):
                        text = getattr(item, sub, None)
                        if isinstance(text, str) and _has_control(text):
                            return f"$.{field}[{j}].{sub}", text
    return None


cdef class NameCheck:
    """A Struct's ``__post_init__``: no control character in the names held
    by ``fields`` (see ``first_control_char``). Called by msgspec with the
    Struct after decoding or construction; no Python frame on the way."""
    cdef tuple fields
    cdef object fail

    def __init__(self, tuple fields, fail):
        self.fields = fields
        self.fail = fail  # fail(path, value) raises

    def __call__(self, obj):
        bad = first_control_char(obj, self.fields)
        if bad is not None:
            self.fail(*bad)
