/*
 * Segments a CT series with a model package and writes an RT Structure Set, through the C API;
 * prints the contours per structure and makes the DICOM SEG in memory.
 *
 *   segment CT_DIR MODEL_DIR OUT.dcm [ORT_LIBRARY]
 *
 * ORT_LIBRARY defaults to $AUTOCONTOUR_ORT_LIB. Prints the structures found and exits 0 on
 * success; on failure prints the status and the library's message and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "autocontour.h"

/* Prints a failed call's status and message; returns 1 so callers can `return fail(...)`. */
static int fail(const char *what, ac_status status) {
    fprintf(stderr, "error: %s: %s\n  %s\n", what, ac_status_str(status), ac_last_error_message());
    return 1;
}

static void on_progress(void *user_data, const char *stage, double fraction) {
    int *last_percent = (int *)user_data;
    int percent = (int)(fraction * 100.0);
    if (percent >= *last_percent + 25) {
        *last_percent = percent;
        printf("  %-10s %3d%%\n", stage, percent);
    }
}

int main(int argc, char **argv) {
    ac_engine_options options;
    ac_engine *engine = NULL;
    ac_model *model = NULL;
    ac_series *series = NULL;
    ac_result *result = NULL;
    ac_buffer *seg = NULL;
    const uint8_t *seg_data = NULL;
    size_t seg_len = 0;
    ac_geometry geometry;
    const char *provider = NULL;
    size_t count = 0, i;
    int last_percent = -25;
    int rc = 1;
    ac_status s;

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s CT_DIR MODEL_DIR OUT.dcm [ORT_LIBRARY]\n", argv[0]);
        return 2;
    }
    printf("autocontour %s\n", ac_version());

    if ((s = ac_engine_options_init(&options)) != AC_STATUS_OK) return fail("options", s);
    options.ort_library = argc == 5 ? argv[4] : NULL; /* NULL: $AUTOCONTOUR_ORT_LIB */
    options.device = "cpu";
    options.threads = 2;

    if ((s = ac_engine_new(&options, &engine)) != AC_STATUS_OK) {
        rc = fail("ac_engine_new", s);
        goto done;
    }
    if ((s = ac_model_open(engine, argv[2], &model)) != AC_STATUS_OK) {
        rc = fail("ac_model_open", s);
        goto done;
    }
    if ((s = ac_series_load_dir(argv[1], NULL, &series)) != AC_STATUS_OK) {
        rc = fail("ac_series_load_dir", s);
        goto done;
    }
    if ((s = ac_series_geometry(series, &geometry)) != AC_STATUS_OK) {
        rc = fail("ac_series_geometry", s);
        goto done;
    }
    printf("CT %zu x %zu x %zu, spacing %.3f x %.3f x %.3f mm\n", geometry.size[0],
           geometry.size[1], geometry.size[2], geometry.spacing[0], geometry.spacing[1],
           geometry.spacing[2]);

    if ((s = ac_segment(model, series, on_progress, &last_percent, NULL, &result)) !=
        AC_STATUS_OK) {
        rc = fail("ac_segment", s);
        goto done;
    }
    if ((s = ac_result_execution(result, &provider, NULL)) != AC_STATUS_OK) {
        rc = fail("ac_result_execution", s);
        goto done;
    }
    printf("ran on %s\n", provider);
    if ((s = ac_result_structure_count(result, &count)) != AC_STATUS_OK) {
        rc = fail("ac_result_structure_count", s);
        goto done;
    }
    for (i = 0; i < count; i++) {
        ac_structure st;
        if ((s = ac_result_structure(result, i, &st)) != AC_STATUS_OK) {
            rc = fail("ac_result_structure", s);
            goto done;
        }
        size_t contours = 0, points = 0, k;
        if ((s = ac_result_contour_count(result, i, &contours)) != AC_STATUS_OK) {
            rc = fail("ac_result_contour_count", s);
            goto done;
        }
        for (k = 0; k < contours; k++) {
            ac_contour c;
            if ((s = ac_result_contour(result, i, k, &c)) != AC_STATUS_OK) {
                rc = fail("ac_result_contour", s);
                goto done;
            }
            points += c.point_count; /* c.points: x, y, z triplets in patient mm */
        }
        printf("  %u %-12s %10.1f ml %6zu contours %8zu points %s\n", (unsigned)st.label, st.name,
               st.volume_ml, contours, points, st.flags);
    }
    if ((s = ac_result_write_rtstruct(result, argv[3])) != AC_STATUS_OK) {
        rc = fail("ac_result_write_rtstruct", s);
        goto done;
    }
    printf("wrote %s\n", argv[3]);
    /* The DICOM SEG in memory: a library buffer, freed by the library. */
    if ((s = ac_result_seg_buffer(result, &seg)) != AC_STATUS_OK) {
        rc = fail("ac_result_seg_buffer", s);
        goto done;
    }
    if ((s = ac_buffer_data(seg, &seg_data, &seg_len)) != AC_STATUS_OK) {
        rc = fail("ac_buffer_data", s);
        goto done;
    }
    printf("SEG in memory: %zu bytes (%s)\n", seg_len,
           seg_len > 132 && seg_data[128] == 'D' ? "DICM" : "?");
    rc = 0;

done:
    /* Every _free accepts NULL. */
    ac_buffer_free(seg);
    ac_result_free(result);
    ac_series_free(series);
    ac_model_free(model);
    ac_engine_free(engine);
    /* Handles live in the library's registry, so a forgotten _free is "still reachable" for
     * leak checkers; the registry's count catches it. */
    if (ac_live_handle_count() != 0) {
        fprintf(stderr, "error: %zu handles not freed\n", ac_live_handle_count());
        rc = 1;
    }
    return rc;
}
