// Segments a CT series with a model package and writes an RT Structure Set, through the C++
// wrapper (bindings/cpp/autocontour.hpp); prints the contours, uncertainty and review flags per
// structure and the case flags, and makes the SEG and NIfTI outputs in memory.
//
//   segment_cpp CT_DIR MODEL_DIR OUT.dcm [ORT_LIBRARY]
//
// ORT_LIBRARY defaults to $AUTOCONTOUR_ORT_LIB. Exits 1 with the library's message on failure.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "autocontour.hpp"

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        std::cerr << "usage: " << argv[0] << " CT_DIR MODEL_DIR OUT.dcm [ORT_LIBRARY]\n";
        return 2;
    }
    try {
        autocontour::EngineOptions options;
        if (argc == 5) options.ort_library = argv[4];
        options.threads = 2;
        autocontour::Engine engine(options);
        autocontour::Model model(engine, argv[2]);
        autocontour::Series series = autocontour::Series::load_dir(argv[1]);
        ac_geometry g = series.geometry();
        std::printf("autocontour %s, ONNX Runtime %s, model %s %s\n",
                    autocontour::version().c_str(), engine.ort_version().c_str(),
                    model.name().c_str(), model.version().c_str());
        std::printf("CT %zu x %zu x %zu\n", g.size[0], g.size[1], g.size[2]);
        // A CT that does not suit the model (another body region, too short, no body) gets case
        // flags; OnMismatch::Refuse would throw Error with AC_STATUS_NOT_APPLICABLE instead.
        autocontour::SegmentOptions segment_options;
        segment_options.on_mismatch = autocontour::OnMismatch::Flag;
        // A site profile (names, colours, subset; docs/profiles.md) and an audit log: from the
        // environment here, so that the RTSTRUCT stays comparable by default.
        if (const char *p = std::getenv("AUTOCONTOUR_PROFILE")) segment_options.profile_path = p;
        if (const char *p = std::getenv("AUTOCONTOUR_AUDIT_LOG")) segment_options.audit_log_path = p;
        autocontour::Result result = autocontour::segment(model, series, segment_options);
        std::printf("ran on %s\n", result.execution_provider().c_str());
        const auto structures = result.structures();
        for (std::size_t i = 0; i < structures.size(); ++i) {
            const auto &s = structures[i];
            std::size_t contours = result.contour_count(i), points = 0;
            for (std::size_t k = 0; k < contours; ++k) points += result.contour(i, k).points.size();
            std::printf("  %u %-12s %10.1f ml %6zu contours %8zu points\n", unsigned(s.label),
                        s.name.c_str(), s.volume_ml, contours, points);
            if (const auto u = result.uncertainty(i)) {
                std::printf("      uncertainty: mean entropy %.3f, boundary ", u->mean_entropy);
                if (u->boundary_entropy)
                    std::printf("%.3f", *u->boundary_entropy);
                else
                    std::printf("n/a");
                std::printf(", margin %.3f\n", u->mean_margin);
            }
            for (const auto &f : result.flags(i))
                std::printf("      flag %s: %s\n", f.code.c_str(), f.message.c_str());
        }
        const auto case_flags = result.case_flags();
        std::printf("case flags: %zu\n", case_flags.size());
        for (const auto &f : case_flags)
            std::printf("  %s: %s\n", f.code.c_str(), f.message.c_str());
        result.write_rtstruct(argv[3]);
        std::printf("wrote %s\n", argv[3]);
        std::printf("structure 0 written: %s\n", result.structure_written(0) ? "yes" : "no");
        std::printf("audit: %s\n", result.audit_record().c_str());
        // The other outputs in memory, as a host would send them on (PACS, its own database).
        std::vector<uint8_t> seg = result.seg_bytes();
        std::vector<uint8_t> nifti = result.nifti_bytes(true);
        std::printf("SEG in memory: %zu bytes; NIfTI (gzip) in memory: %zu bytes\n", seg.size(),
                    nifti.size());
    } catch (const autocontour::Error &e) {
        std::cerr << "error: " << e.status_text() << "\n  " << e.what() << "\n";
        return 1;
    }
    return 0;
}
