// autocontour .NET binding: P/Invoke declarations over the C API (include/autocontour.h) and
// SafeHandle/IDisposable wrappers. Works on .NET (Autocontour.csproj) and Mono (mcs).
//
// Conventions: every import is Cdecl; strings go to C as NUL-terminated UTF-8 byte arrays and come
// back as IntPtr decoded as UTF-8 (no reliance on LPUTF8Str, which older Mono lacks); C `bool` is
// marshalled as one byte (UnmanagedType.I1). A failing call throws AutocontourException carrying
// the status and the library's message. Threading follows the C handles: Engine, Model, Series,
// Result, CancelToken and RtStruct may be used from several threads at once; a SeriesBuilder is
// filled by one thread at a time.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace Autocontour
{
    /// <summary>A failed C API call: the status code and the library's message.</summary>
    public sealed class AutocontourException : Exception
    {
        /// <summary>The C status code (AC_STATUS_...).</summary>
        public uint Status { get; }

        /// <summary>The status as text ("AC_STATUS_IO: ...").</summary>
        public string StatusText { get; }

        internal AutocontourException(uint status, string message)
            : base(message)
        {
            Status = status;
            StatusText = Native.Utf8(Native.ac_status_str(status)) ?? "";
        }
    }

    /// <summary>Voxel grid in the DICOM patient frame (LPS, mm); see ac_geometry.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Geometry
    {
        /// <summary>Voxels along i (columns), j (rows), k (slices).</summary>
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 3)] public UIntPtr[] Size;
        /// <summary>Centre of voxel (0,0,0), mm.</summary>
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 3)] public double[] Origin;
        /// <summary>Voxel spacing along i, j, k, mm.</summary>
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 3)] public double[] Spacing;
        /// <summary>Row-major 3x3 matrix whose columns are the i, j, k axes.</summary>
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 9)] public double[] Direction;
    }

    /// <summary>Seconds spent per stage; see ac_timings.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Timings
    {
        /// <summary>Preprocessing.</summary>
        public double PreprocessS;
        /// <summary>Tile loop including ONNX Runtime.</summary>
        public double InferenceS;
        /// <summary>Inside ONNX Runtime's Run.</summary>
        public double OrtRunS;
        /// <summary>Back to the CT grid.</summary>
        public double ResampleS;
        /// <summary>Postprocessing.</summary>
        public double PostprocessS;
    }

    /// <summary>One segmented structure (strings copied).</summary>
    public sealed class Structure
    {
        /// <summary>Name from the model manifest.</summary>
        public string Name = "";
        /// <summary>RT ROI Interpreted Type.</summary>
        public string RtRoiType = "";
        /// <summary>Review flags joined by "; ".</summary>
        public string Flags = "";
        /// <summary>Value in the label map.</summary>
        public byte Label;
        /// <summary>RGB colour.</summary>
        public byte[] Color = new byte[3];
        /// <summary>Voxels.</summary>
        public ulong Voxels;
        /// <summary>Volume, ml.</summary>
        public double VolumeMl;
        /// <summary>Mean probability, if known.</summary>
        public double? Confidence;
    }

    /// <summary>A review flag of a structure or of the whole case (strings copied); see ac_flag.</summary>
    public sealed class Flag
    {
        /// <summary>Stable machine-readable code: "empty", "low_confidence", "volume_out_of_range",
        /// "outside_container", "air_in_solid_organ", "wrong_side", "swapped_pair", "truncated",
        /// "uncertain"; case flags "expected_missing", "body_part_mismatch", "scan_too_short",
        /// "content_mismatch", "no_body".</summary>
        public string Code = "";
        /// <summary>What was found, as a sentence for the clinician.</summary>
        public string Message = "";

        /// <summary>"code: message".</summary>
        public override string ToString() => Code + ": " + Message;
    }

    /// <summary>Uncertainty of one structure on the model grid; see ac_uncertainty.</summary>
    public sealed class Uncertainty
    {
        /// <summary>Mean normalised softmax entropy over the structure, 0 (certain) to 1 (uniform).</summary>
        public double MeanEntropy;
        /// <summary>Mean normalised entropy along its boundary, if known.</summary>
        public double? BoundaryEntropy;
        /// <summary>Mean margin between the winning and the second probability, 0-1.</summary>
        public double MeanMargin;
    }

    /// <summary>What segmenting does with a CT that does not suit the model; see ac_on_mismatch.</summary>
    public enum OnMismatch : uint
    {
        /// <summary>Segment anyway; the result carries case flags (Result.CaseFlags).</summary>
        Flag = 0,
        /// <summary>Throw AutocontourException with status AC_STATUS_NOT_APPLICABLE (410); its
        /// message lists each reason.</summary>
        Refuse = 1,
    }

    /// <summary>Segmentation options; see ac_segment_options.</summary>
    public struct SegmentOptions
    {
        /// <summary>Case flags (the default) or a refusal for a CT that does not suit the model.</summary>
        public OnMismatch OnMismatch;
        /// <summary>A site profile file (TOML or JSON; docs/profiles.md), or null: names, colours,
        /// types and subset of the structures, structure set label, approval status. Checked
        /// before inference (AutocontourException, AC_STATUS_INVALID_PROFILE).</summary>
        public string ProfilePath;
        /// <summary>A file to append the case's audit line to, or null (on failure at once, on
        /// success when the Result is disposed, with the outputs written through it).</summary>
        public string AuditLogPath;

        /// <summary>The library's defaults.</summary>
        public static SegmentOptions Default
        {
            get
            {
                var c = new Native.CSegmentOptions();
                Native.Check(Native.ac_segment_options_init(ref c));
                return new SegmentOptions { OnMismatch = (OnMismatch)c.OnMismatch };
            }
        }
    }

    /// <summary>How strictly a series is checked when loaded; see ac_load_options.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LoadOptions
    {
        /// <summary>Largest slice-gap deviation from the median gap, mm (default 0.1).</summary>
        public double GapToleranceMm;
        /// <summary>Largest in-plane step between slices before it counts as tilt, mm (default 0.05).</summary>
        public double TiltToleranceMm;
        /// <summary>Largest number of voxels (default 1024 x 1024 x 2048).</summary>
        public ulong MaxVoxels;

        /// <summary>The library's defaults.</summary>
        public static LoadOptions Default
        {
            get
            {
                var o = new LoadOptions();
                Native.Check(Native.ac_load_options_init(ref o));
                return o;
            }
        }
    }

    /// <summary>Metrics of a test mask against a reference mask; see ac_metrics.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Metrics
    {
        /// <summary>Reference volume, mm^3.</summary>
        public double ReferenceVolumeMm3;
        /// <summary>Test volume, mm^3.</summary>
        public double TestVolumeMm3;
        /// <summary>Test minus reference volume, mm^3.</summary>
        public double VolumeDifferenceMm3;
        /// <summary>Dice, 0-1.</summary>
        public double Dice;
        /// <summary>Jaccard, 0-1.</summary>
        public double Jaccard;
        /// <summary>Hausdorff distance, mm.</summary>
        public double HausdorffMm;
        /// <summary>95 % Hausdorff distance, mm.</summary>
        public double Hd95Mm;
        /// <summary>Mean distance reference to test, mm.</summary>
        public double MeanDistanceReferenceToTestMm;
        /// <summary>Mean distance test to reference, mm.</summary>
        public double MeanDistanceTestToReferenceMm;
        /// <summary>Average symmetric surface distance, mm.</summary>
        public double AssdMm;
        /// <summary>Surface Dice at ToleranceMm, 0-1.</summary>
        public double SurfaceDice;
        /// <summary>The surface Dice tolerance, mm.</summary>
        public double ToleranceMm;
    }

    /// <summary>One contour of a structure: its slice and points (x, y, z triplets, patient mm).</summary>
    public sealed class Contour
    {
        /// <summary>Index of the CT slice it lies on.</summary>
        public ulong Slice;
        /// <summary>3 * point count doubles: x, y, z of each point.</summary>
        public double[] Points = new double[0];
    }

    /// <summary>One contour of an ROI read from an RT Structure Set (copied).</summary>
    public sealed class RoiContour
    {
        /// <summary>Contour Geometric Type (CLOSED_PLANAR, POINT, ...).</summary>
        public string GeometricType = "";
        /// <summary>3 * point count doubles: x, y, z of each point, patient mm (LPS).</summary>
        public double[] Points = new double[0];
        /// <summary>Referenced SOP Instance UID ("" when the file gives none).</summary>
        public string ReferencedSopInstanceUid = "";
    }

    /// <summary>One ROI of an RT Structure Set (strings copied).</summary>
    public sealed class Roi
    {
        /// <summary>ROI Name.</summary>
        public string Name = "";
        /// <summary>ROI Number.</summary>
        public long Number;
        /// <summary>Display colour (RGB), if given.</summary>
        public byte[] Color;
        /// <summary>RT ROI Interpreted Type ("" when absent).</summary>
        public string InterpretedType = "";
        /// <summary>Number of contours.</summary>
        public ulong ContourCount;
    }

    internal static class Native
    {
        private const string Lib = "autocontour";

        [StructLayout(LayoutKind.Sequential)]
        internal struct CSegmentOptions
        {
            public uint OnMismatch;
            public IntPtr ProfilePath;
            public IntPtr AuditLogPath;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct EngineOptions
        {
            public IntPtr OrtLibrary;
            public IntPtr Device;
            public uint Threads;
            public uint Fallback;
            public ulong MemoryLimitBytes;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct CStructure
        {
            public IntPtr Name;
            public IntPtr RtRoiType;
            public IntPtr Flags;
            public byte Label;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 3)] public byte[] Color;
            public ulong Voxels;
            public double VolumeMl;
            public double Confidence;
            [MarshalAs(UnmanagedType.I1)] public bool HasConfidence;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct CContour
        {
            public UIntPtr Slice;
            public UIntPtr PointCount;
            public IntPtr Points;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct CRoi
        {
            public IntPtr Name;
            public long Number;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 3)] public byte[] Color;
            [MarshalAs(UnmanagedType.I1)] public bool HasColor;
            public IntPtr InterpretedType;
            public UIntPtr ContourCount;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct CRoiContour
        {
            public IntPtr GeometricType;
            public UIntPtr PointCount;
            public IntPtr Points;
            public IntPtr ReferencedSopInstanceUid;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct CFlag
        {
            public IntPtr Code;
            public IntPtr Message;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct CUncertainty
        {
            public double MeanEntropy;
            public double BoundaryEntropy;
            public double MeanMargin;
            [MarshalAs(UnmanagedType.I1)] public bool HasBoundaryEntropy;
            [MarshalAs(UnmanagedType.I1)] public bool Known;
        }

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void ProgressCallback(IntPtr userData, IntPtr stage, double fraction);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern IntPtr ac_version();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern IntPtr ac_status_str(uint status);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern IntPtr ac_last_error_message();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_engine_options_init(ref EngineOptions options);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_engine_new(ref EngineOptions options, out EngineHandle engine);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_engine_ort_version(EngineHandle engine, out IntPtr version);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_engine_free(IntPtr engine);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_model_open(EngineHandle engine, byte[] dir, out ModelHandle model);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_model_info(ModelHandle model, out IntPtr name, out IntPtr version);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_model_free(IntPtr model);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_load_dir(byte[] dir, byte[] seriesUid, out SeriesHandle series);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_geometry(SeriesHandle series, out Geometry geometry);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_uid(SeriesHandle series, out IntPtr uid);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_free(IntPtr series);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_cancel_token_new(out CancelTokenHandle token);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_cancel_token_cancel(CancelTokenHandle token);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_cancel_token_free(IntPtr token);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_segment_options_init(ref CSegmentOptions options);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_structure_written(ResultHandle result, UIntPtr index, [MarshalAs(UnmanagedType.I1)] out bool written);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_audit_record(ResultHandle result, out BufferHandle buffer);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ac_segment_with_options(ModelHandle model, SeriesHandle series, ref CSegmentOptions options,
                                                            ProgressCallback progress, IntPtr userData, IntPtr cancel,
                                                            out ResultHandle result);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_flag_count(ResultHandle result, UIntPtr structureIndex, out UIntPtr count);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_flag(ResultHandle result, UIntPtr structureIndex, UIntPtr flagIndex, out CFlag flag);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_case_flag_count(ResultHandle result, out UIntPtr count);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_case_flag(ResultHandle result, UIntPtr index, out CFlag flag);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_uncertainty(ResultHandle result, UIntPtr index, out CUncertainty uncertainty);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_labels(ResultHandle result, out Geometry geometry, out IntPtr data, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_structure_count(ResultHandle result, out UIntPtr count);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_structure(ResultHandle result, UIntPtr index, out CStructure structure);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_execution(ResultHandle result, out IntPtr provider, out IntPtr fallbackReason);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_timings(ResultHandle result, out Timings timings);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_write_rtstruct(ResultHandle result, byte[] path);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_rtstruct_buffer(ResultHandle result, out BufferHandle buffer);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_free(IntPtr result);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_buffer_data(BufferHandle buffer, out IntPtr data, out UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_buffer_free(IntPtr buffer);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_load_options_init(ref LoadOptions options);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_load_dir_with_options(byte[] dir, byte[] seriesUid, ref LoadOptions options, out SeriesHandle series);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_builder_new(out SeriesBuilderHandle builder);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_builder_add_buffer(SeriesBuilderHandle builder, byte[] data, UIntPtr len, byte[] name);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_builder_count(SeriesBuilderHandle builder, out UIntPtr count);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_builder_build(SeriesBuilderHandle builder, byte[] seriesUid, ref LoadOptions options, out SeriesHandle series);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_series_builder_free(IntPtr builder);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_contour_count(ResultHandle result, UIntPtr structureIndex, out UIntPtr count);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_contour(ResultHandle result, UIntPtr structureIndex, UIntPtr contourIndex, out CContour contour);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_write_seg(ResultHandle result, byte[] path);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_seg_buffer(ResultHandle result, out BufferHandle buffer);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_write_nifti(ResultHandle result, byte[] path);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_result_nifti_buffer(ResultHandle result, [MarshalAs(UnmanagedType.I1)] bool gzip, out BufferHandle buffer);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_rtstruct_open(byte[] path, out RtStructHandle rtstruct);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_rtstruct_open_buffer(byte[] data, UIntPtr len, out RtStructHandle rtstruct);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_rtstruct_roi_count(RtStructHandle rtstruct, out UIntPtr count);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_rtstruct_roi(RtStructHandle rtstruct, UIntPtr index, out CRoi roi);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_rtstruct_contour(RtStructHandle rtstruct, UIntPtr roiIndex, UIntPtr k, out CRoiContour contour);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_rtstruct_find_roi(RtStructHandle rtstruct, byte[] name, out UIntPtr index);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_rtstruct_rasterise(RtStructHandle rtstruct, UIntPtr index, SeriesHandle series, out BufferHandle mask);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_rtstruct_free(IntPtr rtstruct);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)] internal static extern uint ac_compare_masks(byte[] reference, byte[] test, UIntPtr len, ref Geometry geometry, double toleranceMm, out Metrics metrics);

        /// <summary>Copies a library buffer into a byte array and frees it.</summary>
        internal static byte[] TakeBuffer(BufferHandle buf)
        {
            using (buf)
            {
                Check(ac_buffer_data(buf, out IntPtr data, out UIntPtr len));
                byte[] b = new byte[checked((int)len.ToUInt64())];
                Marshal.Copy(data, b, 0, b.Length);
                return b;
            }
        }

        /// <summary>NUL-terminated UTF-8 bytes for a C string argument (null stays null).</summary>
        internal static byte[] ToUtf8(string s)
        {
            if (s == null) return null;
            int n = Encoding.UTF8.GetByteCount(s);
            byte[] b = new byte[n + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, b, 0);
            return b;
        }

        /// <summary>Decodes a NUL-terminated UTF-8 string owned by the library.</summary>
        internal static string Utf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            byte[] b = new byte[n];
            Marshal.Copy(p, b, 0, n);
            return Encoding.UTF8.GetString(b);
        }

        internal static void Check(uint status)
        {
            if (status != 0) throw new AutocontourException(status, Utf8(ac_last_error_message()) ?? "");
        }
    }

    internal sealed class EngineHandle : SafeHandle
    {
        public EngineHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => Native.ac_engine_free(handle) == 0;
    }

    internal sealed class ModelHandle : SafeHandle
    {
        public ModelHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => Native.ac_model_free(handle) == 0;
    }

    internal sealed class SeriesHandle : SafeHandle
    {
        public SeriesHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => Native.ac_series_free(handle) == 0;
    }

    internal sealed class CancelTokenHandle : SafeHandle
    {
        public CancelTokenHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => Native.ac_cancel_token_free(handle) == 0;
    }

    internal sealed class ResultHandle : SafeHandle
    {
        public ResultHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => Native.ac_result_free(handle) == 0;
    }

    internal sealed class BufferHandle : SafeHandle
    {
        public BufferHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => Native.ac_buffer_free(handle) == 0;
    }

    internal sealed class SeriesBuilderHandle : SafeHandle
    {
        public SeriesBuilderHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => Native.ac_series_builder_free(handle) == 0;
    }

    internal sealed class RtStructHandle : SafeHandle
    {
        public RtStructHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => Native.ac_rtstruct_free(handle) == 0;
    }

    /// <summary>Library-wide functions.</summary>
    public static class Library
    {
        /// <summary>The library version ("0.1.0").</summary>
        public static string Version => Native.Utf8(Native.ac_version());

        /// <summary>Metrics of test against reference (equal-length masks on geometry; non-zero =
        /// inside); see ac_compare_masks.</summary>
        public static Metrics CompareMasks(byte[] reference, byte[] test, Geometry geometry, double toleranceMm)
        {
            if (reference == null) throw new ArgumentNullException(nameof(reference));
            if (test == null) throw new ArgumentNullException(nameof(test));
            if (reference.Length != test.Length) throw new ArgumentException("masks differ in length");
            Native.Check(Native.ac_compare_masks(reference, test, new UIntPtr((ulong)reference.Length),
                                                 ref geometry, toleranceMm, out Metrics m));
            return m;
        }
    }

    /// <summary>ONNX Runtime loaded plus execution options. Shareable across threads.</summary>
    public sealed class Engine : IDisposable
    {
        internal readonly EngineHandle Handle;

        /// <summary>Loads ONNX Runtime (ortLibrary null: $AUTOCONTOUR_ORT_LIB) for a device
        /// ("cpu", "cuda:N").</summary>
        public Engine(string ortLibrary = null, string device = "cpu", uint threads = 0,
                      bool fallbackToCpu = true, ulong memoryLimitBytes = 0)
        {
            var o = new Native.EngineOptions();
            Native.Check(Native.ac_engine_options_init(ref o));
            IntPtr lib = IntPtr.Zero, dev = IntPtr.Zero;
            try
            {
                lib = AllocUtf8(ortLibrary);
                dev = AllocUtf8(device);
                o.OrtLibrary = lib;
                o.Device = dev;
                o.Threads = threads;
                o.Fallback = fallbackToCpu ? 0u : 1u;
                o.MemoryLimitBytes = memoryLimitBytes;
                Native.Check(Native.ac_engine_new(ref o, out Handle));
            }
            finally
            {
                if (lib != IntPtr.Zero) Marshal.FreeHGlobal(lib);
                if (dev != IntPtr.Zero) Marshal.FreeHGlobal(dev);
            }
        }

        internal static IntPtr AllocUtf8(string s)
        {
            byte[] b = Native.ToUtf8(s);
            if (b == null) return IntPtr.Zero;
            IntPtr p = Marshal.AllocHGlobal(b.Length);
            Marshal.Copy(b, 0, p, b.Length);
            return p;
        }

        /// <summary>Version of the loaded ONNX Runtime.</summary>
        public string OrtVersion
        {
            get
            {
                Native.Check(Native.ac_engine_ort_version(Live(Handle), out IntPtr v));
                return Native.Utf8(v);
            }
        }

        internal static T Live<T>(T h) where T : SafeHandle
        {
            if (h == null || h.IsClosed || h.IsInvalid) throw new ObjectDisposedException(typeof(T).Name);
            return h;
        }

        /// <summary>Frees the engine (models opened from it stay valid).</summary>
        public void Dispose() => Handle?.Dispose();
    }

    /// <summary>A model package. Many threads may segment with one model at once.</summary>
    public sealed class Model : IDisposable
    {
        internal readonly ModelHandle Handle;

        /// <summary>Opens the package in folder dir.</summary>
        public Model(Engine engine, string dir)
        {
            Native.Check(Native.ac_model_open(Engine.Live(engine.Handle), Native.ToUtf8(dir), out Handle));
        }

        /// <summary>Name from the manifest.</summary>
        public string Name
        {
            get
            {
                Native.Check(Native.ac_model_info(Engine.Live(Handle), out IntPtr n, out IntPtr _));
                return Native.Utf8(n);
            }
        }

        /// <summary>Segments series with the default options (case flags for a CT that does not
        /// suit the model); progress (may be null) runs on this thread; cancel (may be null) stops
        /// the run from another thread (AutocontourException, AC_STATUS_CANCELLED).</summary>
        public Result Segment(Series series, Action<string, double> progress = null, CancelToken cancel = null)
            => Segment(series, SegmentOptions.Default, progress, cancel);

        /// <summary>Segments series with options: a CT that does not suit the model gives case
        /// flags (Result.CaseFlags) or, with OnMismatch.Refuse, AutocontourException with status
        /// AC_STATUS_NOT_APPLICABLE. progress (may be null) runs on this thread; cancel (may be
        /// null) stops the run from another thread (AutocontourException, AC_STATUS_CANCELLED).</summary>
        public Result Segment(Series series, SegmentOptions options, Action<string, double> progress = null,
                              CancelToken cancel = null)
        {
            Exception callbackError = null;
            Native.ProgressCallback cb = null;
            if (progress != null)
            {
                cb = (ud, stage, fraction) =>
                {
                    if (callbackError != null) return;
                    try { progress(Native.Utf8(stage), fraction); }
                    catch (Exception e) { callbackError = e; } // never unwind into C
                };
            }
            bool added = false;
            var c = new Native.CSegmentOptions { OnMismatch = (uint)options.OnMismatch };
            try
            {
                c.ProfilePath = Engine.AllocUtf8(options.ProfilePath);
                c.AuditLogPath = Engine.AllocUtf8(options.AuditLogPath);
                if (cancel != null) Engine.Live(cancel.Handle).DangerousAddRef(ref added);
                IntPtr token = added ? cancel.Handle.DangerousGetHandle() : IntPtr.Zero;
                uint status = Native.ac_segment_with_options(Engine.Live(Handle), Engine.Live(series.Handle),
                                                             ref c, cb, IntPtr.Zero, token,
                                                             out ResultHandle r);
                GC.KeepAlive(cb); // the delegate must outlive the native call
                if (callbackError != null)
                {
                    r.Dispose();
                    throw callbackError;
                }
                Native.Check(status);
                return new Result(r);
            }
            finally
            {
                if (added) cancel.Handle.DangerousRelease();
                if (c.ProfilePath != IntPtr.Zero) Marshal.FreeHGlobal(c.ProfilePath);
                if (c.AuditLogPath != IntPtr.Zero) Marshal.FreeHGlobal(c.AuditLogPath);
            }
        }

        /// <summary>Frees the model.</summary>
        public void Dispose() => Handle?.Dispose();
    }

    /// <summary>A CT series in memory.</summary>
    public sealed class Series : IDisposable
    {
        internal readonly SeriesHandle Handle;

        private Series(SeriesHandle h) { Handle = h; }

        /// <summary>Loads the largest usable CT series under dir, or the one with seriesUid.</summary>
        public static Series LoadDir(string dir, string seriesUid = null)
        {
            Native.Check(Native.ac_series_load_dir(Native.ToUtf8(dir), Native.ToUtf8(seriesUid), out SeriesHandle h));
            return new Series(h);
        }

        /// <summary>Like LoadDir, with load options.</summary>
        public static Series LoadDir(string dir, string seriesUid, LoadOptions options)
        {
            Native.Check(Native.ac_series_load_dir_with_options(Native.ToUtf8(dir), Native.ToUtf8(seriesUid),
                                                                ref options, out SeriesHandle h));
            return new Series(h);
        }

        internal static Series FromHandle(SeriesHandle h) => new Series(h);

        /// <summary>Voxel grid.</summary>
        public Geometry Geometry
        {
            get
            {
                Native.Check(Native.ac_series_geometry(Engine.Live(Handle), out Geometry g));
                return g;
            }
        }

        /// <summary>Series Instance UID.</summary>
        public string Uid
        {
            get
            {
                Native.Check(Native.ac_series_uid(Engine.Live(Handle), out IntPtr u));
                return Native.Utf8(u);
            }
        }

        /// <summary>Frees the series.</summary>
        public void Dispose() => Handle?.Dispose();
    }

    /// <summary>Builds a Series from DICOM files held in memory. One thread at a time.</summary>
    public sealed class SeriesBuilder : IDisposable
    {
        internal readonly SeriesBuilderHandle Handle;

        /// <summary>An empty builder.</summary>
        public SeriesBuilder() { Native.Check(Native.ac_series_builder_new(out Handle)); }

        /// <summary>Adds one DICOM file (copied); name (may be null) names it in messages.</summary>
        public void Add(byte[] data, string name = null)
        {
            if (data == null) throw new ArgumentNullException(nameof(data));
            Native.Check(Native.ac_series_builder_add_buffer(Engine.Live(Handle), data,
                                                             new UIntPtr((ulong)data.Length), Native.ToUtf8(name)));
        }

        /// <summary>Number of buffers added.</summary>
        public ulong Count
        {
            get
            {
                Native.Check(Native.ac_series_builder_count(Engine.Live(Handle), out UIntPtr n));
                return n.ToUInt64();
            }
        }

        /// <summary>Loads the largest usable CT series among the buffers, or the one with seriesUid.</summary>
        public Series Build(string seriesUid = null, LoadOptions? options = null)
        {
            LoadOptions o = options ?? LoadOptions.Default;
            Native.Check(Native.ac_series_builder_build(Engine.Live(Handle), Native.ToUtf8(seriesUid), ref o,
                                                        out SeriesHandle h));
            return Series.FromHandle(h);
        }

        /// <summary>Frees the builder and its copies.</summary>
        public void Dispose() => Handle?.Dispose();
    }

    /// <summary>An RT Structure Set read from a file or memory.</summary>
    public sealed class RtStruct : IDisposable
    {
        internal readonly RtStructHandle Handle;

        private RtStruct(RtStructHandle h) { Handle = h; }

        /// <summary>Reads the RT Structure Set file path.</summary>
        public static RtStruct Open(string path)
        {
            Native.Check(Native.ac_rtstruct_open(Native.ToUtf8(path), out RtStructHandle h));
            return new RtStruct(h);
        }

        /// <summary>Reads an RT Structure Set held in memory.</summary>
        public static RtStruct FromBytes(byte[] data)
        {
            if (data == null) throw new ArgumentNullException(nameof(data));
            Native.Check(Native.ac_rtstruct_open_buffer(data, new UIntPtr((ulong)data.Length), out RtStructHandle h));
            return new RtStruct(h);
        }

        /// <summary>The ROIs, in file order.</summary>
        public IReadOnlyList<Roi> Rois
        {
            get
            {
                Native.Check(Native.ac_rtstruct_roi_count(Engine.Live(Handle), out UIntPtr n));
                var list = new List<Roi>();
                for (ulong i = 0; i < n.ToUInt64(); i++)
                {
                    Native.Check(Native.ac_rtstruct_roi(Handle, new UIntPtr(i), out Native.CRoi c));
                    list.Add(new Roi
                    {
                        Name = Native.Utf8(c.Name),
                        Number = c.Number,
                        Color = c.HasColor ? c.Color : null,
                        InterpretedType = Native.Utf8(c.InterpretedType),
                        ContourCount = c.ContourCount.ToUInt64(),
                    });
                }
                return list;
            }
        }

        /// <summary>Contour k of ROI roiIndex, in file order (copied).</summary>
        public RoiContour Contour(ulong roiIndex, ulong k)
        {
            Native.Check(Native.ac_rtstruct_contour(Engine.Live(Handle), new UIntPtr(roiIndex), new UIntPtr(k),
                                                    out Native.CRoiContour c));
            var points = new double[3 * (int)c.PointCount.ToUInt64()];
            if (points.Length > 0) Marshal.Copy(c.Points, points, 0, points.Length);
            return new RoiContour
            {
                GeometricType = Native.Utf8(c.GeometricType),
                Points = points,
                ReferencedSopInstanceUid = Native.Utf8(c.ReferencedSopInstanceUid),
            };
        }

        /// <summary>Index of the ROI named name (exact, then ignoring case); throws when absent.</summary>
        public ulong FindRoi(string name)
        {
            Native.Check(Native.ac_rtstruct_find_roi(Engine.Live(Handle), Native.ToUtf8(name), out UIntPtr i));
            return i.ToUInt64();
        }

        /// <summary>ROI index rasterised onto the grid of series: 1 inside, 0 outside.</summary>
        public byte[] Rasterise(ulong index, Series series)
        {
            Native.Check(Native.ac_rtstruct_rasterise(Engine.Live(Handle), new UIntPtr(index),
                                                      Engine.Live(series.Handle), out BufferHandle b));
            return Native.TakeBuffer(b);
        }

        /// <summary>Frees the structure set.</summary>
        public void Dispose() => Handle?.Dispose();
    }

    /// <summary>Cancels a running segmentation from any thread.</summary>
    public sealed class CancelToken : IDisposable
    {
        internal readonly CancelTokenHandle Handle;

        /// <summary>A new token, not cancelled.</summary>
        public CancelToken() { Native.Check(Native.ac_cancel_token_new(out Handle)); }

        /// <summary>Requests cancellation.</summary>
        public void Cancel() => Native.Check(Native.ac_cancel_token_cancel(Engine.Live(Handle)));

        /// <summary>Frees the token.</summary>
        public void Dispose() => Handle?.Dispose();
    }

    /// <summary>The outcome of a segmentation.</summary>
    public sealed class Result : IDisposable
    {
        internal readonly ResultHandle Handle;

        internal Result(ResultHandle h) { Handle = h; }

        /// <summary>The structures, in label order.</summary>
        public IReadOnlyList<Structure> Structures
        {
            get
            {
                Native.Check(Native.ac_result_structure_count(Engine.Live(Handle), out UIntPtr n));
                var list = new List<Structure>();
                for (ulong i = 0; i < n.ToUInt64(); i++)
                {
                    Native.Check(Native.ac_result_structure(Handle, new UIntPtr(i), out Native.CStructure c));
                    list.Add(new Structure
                    {
                        Name = Native.Utf8(c.Name),
                        RtRoiType = Native.Utf8(c.RtRoiType),
                        Flags = Native.Utf8(c.Flags),
                        Label = c.Label,
                        Color = c.Color,
                        Voxels = c.Voxels,
                        VolumeMl = c.VolumeMl,
                        Confidence = c.HasConfidence ? c.Confidence : (double?)null,
                    });
                }
                return list;
            }
        }

        /// <summary>Execution provider that ran ("CPU", "CUDA:0").</summary>
        public string ExecutionProvider
        {
            get
            {
                Native.Check(Native.ac_result_execution(Engine.Live(Handle), out IntPtr p, out IntPtr _));
                return Native.Utf8(p);
            }
        }

        /// <summary>Seconds per stage.</summary>
        public Timings Timings
        {
            get
            {
                Native.Check(Native.ac_result_timings(Engine.Live(Handle), out Timings t));
                return t;
            }
        }

        /// <summary>A copy of the label map and its geometry.</summary>
        public byte[] Labels(out Geometry geometry)
        {
            Native.Check(Native.ac_result_labels(Engine.Live(Handle), out geometry, out IntPtr data, out UIntPtr len));
            byte[] b = new byte[checked((int)len.ToUInt64())];
            Marshal.Copy(data, b, 0, b.Length);
            return b;
        }

        /// <summary>Writes the RT Structure Set to path (atomically).</summary>
        public void WriteRtStruct(string path) =>
            Native.Check(Native.ac_result_write_rtstruct(Engine.Live(Handle), Native.ToUtf8(path)));

        /// <summary>Whether structure index is written to the RT Structure Set, SEG and NIfTI
        /// (false when the site profile leaves it out).</summary>
        public bool StructureWritten(int index)
        {
            Native.Check(Native.ac_result_structure_written(Engine.Live(Handle), new UIntPtr((ulong)index), out bool w));
            return w;
        }

        /// <summary>The case's audit record as one line of JSON (docs/profiles.md).</summary>
        public string AuditRecord()
        {
            Native.Check(Native.ac_result_audit_record(Engine.Live(Handle), out BufferHandle buf));
            return System.Text.Encoding.UTF8.GetString(Native.TakeBuffer(buf));
        }

        /// <summary>The RT Structure Set as bytes (a DICOM file).</summary>
        public byte[] RtStructBytes()
        {
            Native.Check(Native.ac_result_rtstruct_buffer(Engine.Live(Handle), out BufferHandle buf));
            return Native.TakeBuffer(buf);
        }

        /// <summary>Writes the label map as a DICOM SEG to path (atomically).</summary>
        public void WriteSeg(string path) =>
            Native.Check(Native.ac_result_write_seg(Engine.Live(Handle), Native.ToUtf8(path)));

        /// <summary>The DICOM SEG as bytes (a DICOM file).</summary>
        public byte[] SegBytes()
        {
            Native.Check(Native.ac_result_seg_buffer(Engine.Live(Handle), out BufferHandle buf));
            return Native.TakeBuffer(buf);
        }

        /// <summary>Writes the label map as NIfTI-1 to path (gzipped when it ends in .gz).</summary>
        public void WriteNifti(string path) =>
            Native.Check(Native.ac_result_write_nifti(Engine.Live(Handle), Native.ToUtf8(path)));

        /// <summary>The NIfTI-1 file as bytes, gzipped when gzip.</summary>
        public byte[] NiftiBytes(bool gzip)
        {
            Native.Check(Native.ac_result_nifti_buffer(Engine.Live(Handle), gzip, out BufferHandle buf));
            return Native.TakeBuffer(buf);
        }

        /// <summary>The review flags of structure index, in the order raised.</summary>
        public IReadOnlyList<Flag> Flags(int index)
        {
            var s = new UIntPtr((ulong)index);
            Native.Check(Native.ac_result_flag_count(Engine.Live(Handle), s, out UIntPtr n));
            var list = new List<Flag>();
            for (ulong k = 0; k < n.ToUInt64(); k++)
            {
                Native.Check(Native.ac_result_flag(Handle, s, new UIntPtr(k), out Native.CFlag f));
                list.Add(new Flag { Code = Native.Utf8(f.Code), Message = Native.Utf8(f.Message) });
            }
            return list;
        }

        /// <summary>The case flags: the CT does not suit the model, expected structures missing.</summary>
        public IReadOnlyList<Flag> CaseFlags
        {
            get
            {
                Native.Check(Native.ac_result_case_flag_count(Engine.Live(Handle), out UIntPtr n));
                var list = new List<Flag>();
                for (ulong k = 0; k < n.ToUInt64(); k++)
                {
                    Native.Check(Native.ac_result_case_flag(Handle, new UIntPtr(k), out Native.CFlag f));
                    list.Add(new Flag { Code = Native.Utf8(f.Code), Message = Native.Utf8(f.Message) });
                }
                return list;
            }
        }

        /// <summary>The uncertainty of structure index; null when it has no voxel on the model grid.</summary>
        public Uncertainty StructureUncertainty(int index)
        {
            Native.Check(Native.ac_result_uncertainty(Engine.Live(Handle), new UIntPtr((ulong)index),
                                                      out Native.CUncertainty u));
            if (!u.Known) return null;
            return new Uncertainty
            {
                MeanEntropy = u.MeanEntropy,
                BoundaryEntropy = u.HasBoundaryEntropy ? u.BoundaryEntropy : (double?)null,
                MeanMargin = u.MeanMargin,
            };
        }

        /// <summary>The contours of structure index (the RT Structure Set's), points copied.</summary>
        public IReadOnlyList<Contour> Contours(int index)
        {
            var s = new UIntPtr((ulong)index);
            Native.Check(Native.ac_result_contour_count(Engine.Live(Handle), s, out UIntPtr n));
            var list = new List<Contour>();
            for (ulong k = 0; k < n.ToUInt64(); k++)
            {
                Native.Check(Native.ac_result_contour(Handle, s, new UIntPtr(k), out Native.CContour c));
                var pts = new double[checked(3 * (int)c.PointCount.ToUInt64())];
                Marshal.Copy(c.Points, pts, 0, pts.Length);
                list.Add(new Contour { Slice = c.Slice.ToUInt64(), Points = pts });
            }
            return list;
        }

        /// <summary>Frees the result.</summary>
        public void Dispose() => Handle?.Dispose();
    }
}
