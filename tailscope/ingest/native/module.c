/* tailscope.ingest._native: native scanners from encoded OTLP blocks to column buffers.
 *
 * scan_json(block: bytes) -> dict | str
 *     One block of whole OTLP/JSON Lines (see json_scan.c).
 * scan_json_document(data: bytes) -> dict | str
 *     One OTLP/JSON document filling the input (pretty-printed or not).
 * scan_proto(message: bytes) -> dict | str
 *     One TracesData / ExportTraceServiceRequest protobuf message (see proto_scan.c).
 *
 * Both return the column buffers of flat.h as a dict, or a short reason (str) when the input
 * needs the tolerant Python reader. They never raise on bad input and release the GIL while
 * scanning.
 */
#include "flat.h"

PyObject *tailscope_scan_json(PyObject *self, PyObject *arg);
PyObject *tailscope_scan_json_document(PyObject *self, PyObject *arg);
PyObject *tailscope_scan_proto(PyObject *self, PyObject *arg);

static PyMethodDef methods[] = {
    {"scan_json", tailscope_scan_json, METH_O,
     "Scan a block of OTLP/JSON Lines into column buffers (dict), or return why not (str)."},
    {"scan_json_document", tailscope_scan_json_document, METH_O,
     "Scan one OTLP/JSON document (the whole input, any whitespace) like scan_json."},
    {"scan_proto", tailscope_scan_proto, METH_O,
     "Scan one OTLP TracesData protobuf message into column buffers (dict), or return why not (str)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Native OTLP scanners (see module.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    /* the promoted keys the scanners look for, so a test can check they match Python's */
    PyObject *keys = PyTuple_New(N_PROMOTED);
    if (!keys) goto fail;
    for (int i = 0; i < N_PROMOTED; i++) {
        PyObject *k = PyUnicode_FromString(PROMOTED_KEYS[i]);
        if (!k) {
            Py_DECREF(keys);
            goto fail;
        }
        PyTuple_SET_ITEM(keys, i, k);
    }
    if (PyModule_AddObject(m, "PROMOTED_KEYS", keys) < 0) {
        Py_DECREF(keys);
        goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
