// autocontour C++ wrapper: header-only RAII over the C API in autocontour.h (C++17).
//
// Every class owns one C handle, is move-only, and frees it in its destructor. A failing call
// throws autocontour::Error carrying the status and the library's message. The C header stays
// the single source of truth; threading rules are those of the C handles (Engine, Model, Series,
// Result, CancelToken and RtStruct are all safe to use from several threads at once; a
// SeriesBuilder is filled by one thread at a time; see autocontour.h).
#ifndef AUTOCONTOUR_HPP
#define AUTOCONTOUR_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autocontour.h"

namespace autocontour {

/// A failed C API call: the status code and the message of ac_last_error_message().
class Error : public std::runtime_error {
public:
    Error(ac_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    /// The C status code (AC_STATUS_...).
    ac_status status() const noexcept { return status_; }
    /// The status as text ("AC_STATUS_IO: ...").
    const char *status_text() const noexcept { return ac_status_str(status_); }

private:
    ac_status status_;
};

namespace detail {
/// Throws Error when `status` is not AC_STATUS_OK.
inline void check(ac_status status) {
    if (status != AC_STATUS_OK) throw Error(status, ac_last_error_message());
}

/// Move-only owner of one C handle, freed with `Free`.
template <typename T, ac_status (*Free)(T *)>
class Handle {
public:
    Handle() noexcept = default;
    explicit Handle(T *raw) noexcept : raw_(raw) {}
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;
    Handle(Handle &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    Handle &operator=(Handle &&other) noexcept {
        if (this != &other) {
            reset();
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    ~Handle() { reset(); }
    /// The C handle, still owned by this object.
    T *get() const noexcept { return raw_; }
    explicit operator bool() const noexcept { return raw_ != nullptr; }

private:
    void reset() noexcept {
        if (raw_) Free(raw_);
        raw_ = nullptr;
    }
    T *raw_ = nullptr;
};
/// Copies a library buffer into a vector and frees it (also when copying throws).
inline std::vector<uint8_t> take_buffer(ac_buffer *raw) {
    Handle<ac_buffer, ac_buffer_free> buf(raw);
    const uint8_t *data = nullptr;
    std::size_t len = 0;
    check(ac_buffer_data(buf.get(), &data, &len));
    return std::vector<uint8_t>(data, data + len);
}
}  // namespace detail

/// Load options (see ac_load_options), initialised to the library's defaults.
inline ac_load_options default_load_options() {
    ac_load_options o;
    detail::check(ac_load_options_init(&o));
    return o;
}

/// The library version ("0.1.0").
inline std::string version() { return ac_version(); }

/// Engine options (see ac_engine_options); empty strings mean the library's defaults.
struct EngineOptions {
    /// Path of the ONNX Runtime library; empty: $AUTOCONTOUR_ORT_LIB, then next to the program.
    std::string ort_library;
    /// "cpu", "cuda", "cuda:N", "tensorrt:N".
    std::string device = "cpu";
    /// ONNX Runtime intra-op threads; 0 = its default.
    uint32_t threads = 0;
    /// Fall back to the CPU when the device cannot run (otherwise fail).
    bool fallback_to_cpu = true;
    /// Inference memory limit in bytes; 0 = default (8 GiB).
    uint64_t memory_limit_bytes = 0;
};

/// ONNX Runtime loaded plus execution options. Shareable across threads.
class Engine {
public:
    explicit Engine(const EngineOptions &o = EngineOptions()) {
        ac_engine_options c;
        detail::check(ac_engine_options_init(&c));
        c.ort_library = o.ort_library.empty() ? nullptr : o.ort_library.c_str();
        c.device = o.device.empty() ? nullptr : o.device.c_str();
        c.threads = o.threads;
        c.fallback = o.fallback_to_cpu ? AC_FALLBACK_CPU : AC_FALLBACK_FAIL;
        c.memory_limit_bytes = o.memory_limit_bytes;
        ac_engine *raw = nullptr;
        detail::check(ac_engine_new(&c, &raw));
        h_ = Handle(raw);
    }
    /// Version of the loaded ONNX Runtime.
    std::string ort_version() const {
        const char *v = nullptr;
        detail::check(ac_engine_ort_version(h_.get(), &v));
        return v;
    }
    /// The C handle (owned by this object).
    ac_engine *get() const noexcept { return h_.get(); }

private:
    using Handle = detail::Handle<ac_engine, ac_engine_free>;
    Handle h_;
};

/// A model package opened on an engine. Many threads may segment with one model at once.
class Model {
public:
    Model(const Engine &engine, const std::string &dir) {
        ac_model *raw = nullptr;
        detail::check(ac_model_open(engine.get(), dir.c_str(), &raw));
        h_ = Handle(raw);
    }
    /// Model name from its manifest.
    std::string name() const {
        const char *n = nullptr;
        detail::check(ac_model_info(h_.get(), &n, nullptr));
        return n;
    }
    /// Model version from its manifest.
    std::string version() const {
        const char *v = nullptr;
        detail::check(ac_model_info(h_.get(), nullptr, &v));
        return v;
    }
    /// The C handle (owned by this object).
    ac_model *get() const noexcept { return h_.get(); }

private:
    using Handle = detail::Handle<ac_model, ac_model_free>;
    Handle h_;
};

/// A CT series in memory.
class Series {
public:
    /// Loads the largest usable CT series under `dir`, or the one with `series_uid`.
    static Series load_dir(const std::string &dir,
                           const std::optional<std::string> &series_uid = std::nullopt) {
        ac_series *raw = nullptr;
        detail::check(
            ac_series_load_dir(dir.c_str(), series_uid ? series_uid->c_str() : nullptr, &raw));
        return Series(raw);
    }
    /// Like load_dir, with load options (tolerances, voxel limit).
    static Series load_dir(const std::string &dir, const std::optional<std::string> &series_uid,
                           const ac_load_options &options) {
        ac_series *raw = nullptr;
        detail::check(ac_series_load_dir_with_options(
            dir.c_str(), series_uid ? series_uid->c_str() : nullptr, &options, &raw));
        return Series(raw);
    }
    /// Voxel grid (size, origin, spacing, direction; LPS mm).
    ac_geometry geometry() const {
        ac_geometry g;
        detail::check(ac_series_geometry(h_.get(), &g));
        return g;
    }
    /// Series Instance UID.
    std::string uid() const {
        const char *u = nullptr;
        detail::check(ac_series_uid(h_.get(), &u));
        return u;
    }
    /// HU voxel view (valid while this Series lives), laid out as described for ac_geometry.
    std::pair<const float *, std::size_t> voxels() const {
        const float *data = nullptr;
        std::size_t len = 0;
        detail::check(ac_series_voxels(h_.get(), &data, &len));
        return {data, len};
    }
    /// The C handle (owned by this object).
    ac_series *get() const noexcept { return h_.get(); }

private:
    friend class SeriesBuilder;
    explicit Series(ac_series *raw) : h_(raw) {}
    using Handle = detail::Handle<ac_series, ac_series_free>;
    Handle h_;
};

/// Builds a Series from DICOM files held in memory (ac_series_builder). One thread at a time.
class SeriesBuilder {
public:
    SeriesBuilder() {
        ac_series_builder *raw = nullptr;
        detail::check(ac_series_builder_new(&raw));
        h_ = Handle(raw);
    }
    /// Adds one DICOM file (copied); `name` (may be empty) names it in error messages.
    void add(const void *data, std::size_t len, const std::string &name = std::string()) {
        detail::check(ac_series_builder_add_buffer(h_.get(), static_cast<const uint8_t *>(data),
                                                   len, name.empty() ? nullptr : name.c_str()));
    }
    /// Adds one DICOM file (copied).
    void add(const std::vector<uint8_t> &bytes, const std::string &name = std::string()) {
        add(bytes.data(), bytes.size(), name);
    }
    /// Number of buffers added.
    std::size_t count() const {
        std::size_t n = 0;
        detail::check(ac_series_builder_count(h_.get(), &n));
        return n;
    }
    /// Loads the largest usable CT series among the buffers, or the one with `series_uid`.
    Series build(const std::optional<std::string> &series_uid = std::nullopt,
                 const std::optional<ac_load_options> &options = std::nullopt) const {
        ac_series *raw = nullptr;
        detail::check(ac_series_builder_build(h_.get(),
                                              series_uid ? series_uid->c_str() : nullptr,
                                              options ? &*options : nullptr, &raw));
        return Series(raw);
    }
    /// The C handle (owned by this object).
    ac_series_builder *get() const noexcept { return h_.get(); }

private:
    using Handle = detail::Handle<ac_series_builder, ac_series_builder_free>;
    Handle h_;
};

/// One contour of a structure: its slice and its points (x, y, z in patient mm; copied).
struct Contour {
    std::size_t slice;
    std::vector<std::array<double, 3>> points;
};

/// One contour of an ROI read from an RT Structure Set; strings and points copied.
struct RoiContour {
    std::string geometric_type;  ///< CLOSED_PLANAR, POINT, ...
    std::vector<std::array<double, 3>> points;  ///< patient mm (LPS), file order
    std::string referenced_sop_instance_uid;  ///< empty when the file gives none
};

/// One ROI of an RT Structure Set; strings copied.
struct Roi {
    std::string name;
    int64_t number;
    std::optional<std::array<uint8_t, 3>> color;
    std::string interpreted_type;
    std::size_t contour_count;
};

/// Cancels a running segmentation from any thread.
class CancelToken {
public:
    CancelToken() {
        ac_cancel_token *raw = nullptr;
        detail::check(ac_cancel_token_new(&raw));
        h_ = Handle(raw);
    }
    /// Requests cancellation; the run returns AC_STATUS_CANCELLED (thrown as Error).
    void cancel() const { detail::check(ac_cancel_token_cancel(h_.get())); }
    /// The C handle (owned by this object).
    ac_cancel_token *get() const noexcept { return h_.get(); }

private:
    using Handle = detail::Handle<ac_cancel_token, ac_cancel_token_free>;
    Handle h_;
};

/// One structure of a result; strings copied.
struct Structure {
    std::string name;
    std::string rt_roi_type;
    std::string flags;
    uint8_t label;
    uint8_t color[3];
    uint64_t voxels;
    double volume_ml;
    std::optional<double> confidence;
};

/// A review flag of a structure or of the whole case (see ac_flag); strings copied.
struct Flag {
    /// Stable machine-readable code: "empty", "low_confidence", "volume_out_of_range",
    /// "outside_container", "air_in_solid_organ", "wrong_side", "swapped_pair", "truncated",
    /// "uncertain"; case flags "expected_missing", "body_part_mismatch", "scan_too_short",
    /// "content_mismatch", "no_body".
    std::string code;
    /// What was found, as a sentence for the clinician (UTF-8).
    std::string message;
};

/// Uncertainty of one structure on the model grid (see ac_uncertainty).
struct Uncertainty {
    /// Mean normalised softmax entropy over the structure, 0 (certain) to 1 (uniform).
    double mean_entropy;
    /// Mean normalised entropy along its boundary, when known.
    std::optional<double> boundary_entropy;
    /// Mean margin between the winning and the second probability, 0-1.
    double mean_margin;
};

/// What segment() does with a CT that does not suit the model (see ac_on_mismatch).
enum class OnMismatch : uint32_t {
    /// Segment anyway; the result carries case flags (Result::case_flags()).
    Flag = AC_ON_MISMATCH_FLAG,
    /// Throw Error with status AC_STATUS_NOT_APPLICABLE; its message lists each reason.
    Refuse = AC_ON_MISMATCH_REFUSE,
};

/// Segmentation options (see ac_segment_options); fields left alone keep the library's defaults.
struct SegmentOptions {
    /// Case flags (the default) or a refusal for a CT that does not suit the model.
    OnMismatch on_mismatch = OnMismatch::Flag;
    /// A site profile file (TOML or JSON; docs/profiles.md), empty for none: names, colours,
    /// types and subset of the structures, structure set label, approval status. Checked before
    /// inference (Error with AC_STATUS_INVALID_PROFILE listing every problem).
    std::string profile_path;
    /// A file to append the case's audit line to, empty for none (on failure at once, on
    /// success when the Result is destroyed, with the outputs written through it).
    std::string audit_log_path;
};

/// The outcome of a segmentation.
class Result {
public:
    /// Number of structures.
    std::size_t structure_count() const {
        std::size_t n = 0;
        detail::check(ac_result_structure_count(h_.get(), &n));
        return n;
    }
    /// Structure `index` (0-based).
    Structure structure(std::size_t index) const {
        ac_structure s;
        detail::check(ac_result_structure(h_.get(), index, &s));
        Structure out{s.name, s.rt_roi_type, s.flags, s.label, {s.color[0], s.color[1], s.color[2]},
                      s.voxels, s.volume_ml, std::nullopt};
        if (s.has_confidence) out.confidence = s.confidence;
        return out;
    }
    /// All structures.
    std::vector<Structure> structures() const {
        std::vector<Structure> v;
        for (std::size_t i = 0, n = structure_count(); i < n; ++i) v.push_back(structure(i));
        return v;
    }
    /// Execution provider that ran ("CPU", "CUDA:0").
    std::string execution_provider() const {
        const char *p = nullptr;
        detail::check(ac_result_execution(h_.get(), &p, nullptr));
        return p;
    }
    /// Label map view (valid while this Result lives) and its geometry.
    std::pair<const uint8_t *, std::size_t> labels(ac_geometry *geometry = nullptr) const {
        const uint8_t *data = nullptr;
        std::size_t len = 0;
        detail::check(ac_result_labels(h_.get(), geometry, &data, &len));
        return {data, len};
    }
    /// Seconds per stage.
    ac_timings timings() const {
        ac_timings t;
        detail::check(ac_result_timings(h_.get(), &t));
        return t;
    }
    /// Writes the RT Structure Set to `path` (atomically).
    void write_rtstruct(const std::string &path) const {
        detail::check(ac_result_write_rtstruct(h_.get(), path.c_str()));
    }
    /// The RT Structure Set as bytes (a DICOM file).
    /// Whether structure `index` is written to the RT Structure Set, SEG and NIfTI (false when the
    /// site profile leaves it out).
    bool structure_written(std::size_t index) const {
        bool w = false;
        detail::check(ac_result_structure_written(h_.get(), index, &w));
        return w;
    }
    /// The case's audit record as one line of JSON (docs/profiles.md).
    std::string audit_record() const {
        ac_buffer *raw = nullptr;
        detail::check(ac_result_audit_record(h_.get(), &raw));
        std::vector<uint8_t> b = detail::take_buffer(raw);
        return std::string(b.begin(), b.end());
    }
    std::vector<uint8_t> rtstruct_bytes() const {
        ac_buffer *raw = nullptr;
        detail::check(ac_result_rtstruct_buffer(h_.get(), &raw));
        return detail::take_buffer(raw);
    }
    /// Writes the label map as a DICOM SEG to `path` (atomically).
    void write_seg(const std::string &path) const {
        detail::check(ac_result_write_seg(h_.get(), path.c_str()));
    }
    /// The DICOM SEG as bytes (a DICOM file).
    std::vector<uint8_t> seg_bytes() const {
        ac_buffer *raw = nullptr;
        detail::check(ac_result_seg_buffer(h_.get(), &raw));
        return detail::take_buffer(raw);
    }
    /// Writes the label map as NIfTI-1 to `path` (gzipped when it ends in .gz; atomically).
    void write_nifti(const std::string &path) const {
        detail::check(ac_result_write_nifti(h_.get(), path.c_str()));
    }
    /// The NIfTI-1 file as bytes, gzipped when `gzip`.
    std::vector<uint8_t> nifti_bytes(bool gzip) const {
        ac_buffer *raw = nullptr;
        detail::check(ac_result_nifti_buffer(h_.get(), gzip, &raw));
        return detail::take_buffer(raw);
    }
    /// Number of review flags of structure `index`.
    std::size_t flag_count(std::size_t index) const {
        std::size_t n = 0;
        detail::check(ac_result_flag_count(h_.get(), index, &n));
        return n;
    }
    /// Review flag `k` of structure `index`.
    Flag flag(std::size_t index, std::size_t k) const {
        ac_flag f;
        detail::check(ac_result_flag(h_.get(), index, k, &f));
        return Flag{f.code, f.message};
    }
    /// All review flags of structure `index`, in the order raised.
    std::vector<Flag> flags(std::size_t index) const {
        std::vector<Flag> v;
        for (std::size_t k = 0, n = flag_count(index); k < n; ++k) v.push_back(flag(index, k));
        return v;
    }
    /// Number of case flags (the CT does not suit the model, expected structures missing).
    std::size_t case_flag_count() const {
        std::size_t n = 0;
        detail::check(ac_result_case_flag_count(h_.get(), &n));
        return n;
    }
    /// Case flag `k`.
    Flag case_flag(std::size_t k) const {
        ac_flag f;
        detail::check(ac_result_case_flag(h_.get(), k, &f));
        return Flag{f.code, f.message};
    }
    /// All case flags.
    std::vector<Flag> case_flags() const {
        std::vector<Flag> v;
        for (std::size_t k = 0, n = case_flag_count(); k < n; ++k) v.push_back(case_flag(k));
        return v;
    }
    /// Uncertainty of structure `index`; empty when the structure has no voxel on the model grid.
    std::optional<Uncertainty> uncertainty(std::size_t index) const {
        ac_uncertainty u;
        detail::check(ac_result_uncertainty(h_.get(), index, &u));
        if (!u.known) return std::nullopt;
        Uncertainty out{u.mean_entropy, std::nullopt, u.mean_margin};
        if (u.has_boundary_entropy) out.boundary_entropy = u.boundary_entropy;
        return out;
    }
    /// Number of contours of structure `index` (the RT Structure Set's, all slices).
    std::size_t contour_count(std::size_t index) const {
        std::size_t n = 0;
        detail::check(ac_result_contour_count(h_.get(), index, &n));
        return n;
    }
    /// Contour `k` of structure `index`, copied.
    Contour contour(std::size_t index, std::size_t k) const {
        ac_contour c;
        detail::check(ac_result_contour(h_.get(), index, k, &c));
        Contour out{c.slice, std::vector<std::array<double, 3>>(c.point_count)};
        for (std::size_t p = 0; p < c.point_count; ++p)
            out.points[p] = {c.points[3 * p], c.points[3 * p + 1], c.points[3 * p + 2]};
        return out;
    }
    /// The C handle (owned by this object).
    ac_result *get() const noexcept { return h_.get(); }

private:
    friend Result segment(const Model &, const Series &, const SegmentOptions &,
                          const std::function<void(const char *, double)> &, const CancelToken *);
    explicit Result(ac_result *raw) : h_(raw) {}
    using Handle = detail::Handle<ac_result, ac_result_free>;
    Handle h_;
};

/// An RT Structure Set read from a file or memory.
class RtStruct {
public:
    /// Reads the RT Structure Set file `path`.
    static RtStruct open(const std::string &path) {
        ac_rtstruct *raw = nullptr;
        detail::check(ac_rtstruct_open(path.c_str(), &raw));
        return RtStruct(raw);
    }
    /// Reads an RT Structure Set held in memory (read during the call, not kept).
    static RtStruct from_bytes(const void *data, std::size_t len) {
        ac_rtstruct *raw = nullptr;
        detail::check(ac_rtstruct_open_buffer(static_cast<const uint8_t *>(data), len, &raw));
        return RtStruct(raw);
    }
    /// Number of ROIs.
    std::size_t roi_count() const {
        std::size_t n = 0;
        detail::check(ac_rtstruct_roi_count(h_.get(), &n));
        return n;
    }
    /// ROI `index` (file order).
    Roi roi(std::size_t index) const {
        ac_roi r;
        detail::check(ac_rtstruct_roi(h_.get(), index, &r));
        Roi out{r.name, r.number, std::nullopt, r.interpreted_type, r.contour_count};
        if (r.has_color) out.color = std::array<uint8_t, 3>{r.color[0], r.color[1], r.color[2]};
        return out;
    }
    /// Contour `k` of ROI `roi_index` (file order).
    RoiContour contour(std::size_t roi_index, std::size_t k) const {
        ac_roi_contour c;
        detail::check(ac_rtstruct_contour(h_.get(), roi_index, k, &c));
        RoiContour out{c.geometric_type, {}, c.referenced_sop_instance_uid};
        out.points.reserve(c.point_count);
        for (std::size_t i = 0; i < c.point_count; ++i)
            out.points.push_back({c.points[3 * i], c.points[3 * i + 1], c.points[3 * i + 2]});
        return out;
    }
    /// Index of the ROI named `name` (exact, then ignoring case); throws when absent.
    std::size_t find_roi(const std::string &name) const {
        std::size_t i = 0;
        detail::check(ac_rtstruct_find_roi(h_.get(), name.c_str(), &i));
        return i;
    }
    /// ROI `index` rasterised onto the grid of `series`: 1 inside, 0 outside.
    std::vector<uint8_t> rasterise(std::size_t index, const Series &series) const {
        ac_buffer *raw = nullptr;
        detail::check(ac_rtstruct_rasterise(h_.get(), index, series.get(), &raw));
        return detail::take_buffer(raw);
    }
    /// The C handle (owned by this object).
    ac_rtstruct *get() const noexcept { return h_.get(); }

private:
    explicit RtStruct(ac_rtstruct *raw) : h_(raw) {}
    using Handle = detail::Handle<ac_rtstruct, ac_rtstruct_free>;
    Handle h_;
};

/// Metrics of `test` against `reference` (masks of equal length on `geometry`; see
/// ac_compare_masks).
inline ac_metrics compare_masks(const std::vector<uint8_t> &reference,
                                const std::vector<uint8_t> &test, const ac_geometry &geometry,
                                double tolerance_mm) {
    if (reference.size() != test.size())
        throw Error(AC_STATUS_INVALID_ARGUMENT, "compare_masks: masks differ in length");
    ac_metrics m;
    detail::check(ac_compare_masks(reference.data(), test.data(), reference.size(), &geometry,
                                   tolerance_mm, &m));
    return m;
}

namespace detail {
struct ProgressContext {
    const std::function<void(const char *, double)> *fn;
    std::exception_ptr error;
};
/// Trampoline: calls the std::function; an exception is stored, never thrown through C.
extern "C" inline void progress_trampoline(void *user_data, const char *stage, double fraction) {
    auto *ctx = static_cast<ProgressContext *>(user_data);
    if (ctx->error) return;
    try {
        (*ctx->fn)(stage, fraction);
    } catch (...) {
        ctx->error = std::current_exception();
    }
}
}  // namespace detail

/// Segments `series` with `model` with `options`: a CT that does not suit the model gives case
/// flags (Result::case_flags()) or, with OnMismatch::Refuse, throws Error with status
/// AC_STATUS_NOT_APPLICABLE. `progress` (may be empty) runs on this thread; an exception it
/// throws is rethrown after the run. `cancel` (may be null) stops the run from another thread.
inline Result segment(const Model &model, const Series &series, const SegmentOptions &options,
                      const std::function<void(const char *, double)> &progress = {},
                      const CancelToken *cancel = nullptr) {
    ac_segment_options c;
    detail::check(ac_segment_options_init(&c));
    c.on_mismatch = static_cast<uint32_t>(options.on_mismatch);
    c.profile_path = options.profile_path.empty() ? nullptr : options.profile_path.c_str();
    c.audit_log_path = options.audit_log_path.empty() ? nullptr : options.audit_log_path.c_str();
    detail::ProgressContext ctx{&progress, nullptr};
    ac_result *raw = nullptr;
    ac_status s = ac_segment_with_options(model.get(), series.get(), &c,
                                          progress ? detail::progress_trampoline : nullptr, &ctx,
                                          cancel ? cancel->get() : nullptr, &raw);
    Result result(raw);  // owns raw (NULL on failure) so nothing leaks on the paths below
    if (ctx.error) std::rethrow_exception(ctx.error);
    detail::check(s);
    return result;
}

/// Segments `series` with `model` with the default options (case flags for a CT that does not
/// suit the model). `progress` (may be empty) runs on this thread; an exception it throws is
/// rethrown after the run. `cancel` (may be null) stops the run from another thread.
inline Result segment(const Model &model, const Series &series,
                      const std::function<void(const char *, double)> &progress = {},
                      const CancelToken *cancel = nullptr) {
    return segment(model, series, SegmentOptions(), progress, cancel);
}

}  // namespace autocontour

#endif  // AUTOCONTOUR_HPP
