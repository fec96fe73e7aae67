// autocontour .NET binding: P/Invoke declarations over the C API (include/autocontour.h) and
// SafeHandle/IDisposable wrappers. Works on .NET (Autocontour.csproj) and Mono (mcs).
//
// Conventions: every import is Cdecl; strings go to C as NUL-terminated UTF-8 byte arrays and come
// back as IntPtr decoded as UTF-8 (no reliance on LPUTF8Str, which older Mono lacks); C `bool` is
// marshalled as one byte (UnmanagedType.I1). A failing call throws AutocontourException carrying
// the status and the library's message. Threading follows the C handles: Engine, Model, Series,
// Result and CancelToken may be used from several threads at once.
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

    internal static class Native
    {
        private const string Lib = "autocontour";

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
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ac_segment(ModelHandle model, SeriesHandle series, ProgressCallback progress,
                                               IntPtr userData, IntPtr cancel, out ResultHandle result);
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

    /// <summary>Library-wide functions.</summary>
    public static class Library
    {
        /// <summary>The library version ("0.1.0").</summary>
        public static string Version => Native.Utf8(Native.ac_version());
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

        private static IntPtr AllocUtf8(string s)
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

        /// <summary>Segments series; progress (may be null) runs on this thread; cancel (may be
        /// null) stops the run from another thread (AutocontourException, AC_STATUS_CANCELLED).</summary>
        public Result Segment(Series series, Action<string, double> progress = null, CancelToken cancel = null)
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
            try
            {
                if (cancel != null) Engine.Live(cancel.Handle).DangerousAddRef(ref added);
                IntPtr token = added ? cancel.Handle.DangerousGetHandle() : IntPtr.Zero;
                uint status = Native.ac_segment(Engine.Live(Handle), Engine.Live(series.Handle), cb,
                                                IntPtr.Zero, token, out ResultHandle r);
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

        /// <summary>The RT Structure Set as bytes (a DICOM file).</summary>
        public byte[] RtStructBytes()
        {
            Native.Check(Native.ac_result_rtstruct_buffer(Engine.Live(Handle), out BufferHandle buf));
            using (buf)
            {
                Native.Check(Native.ac_buffer_data(buf, out IntPtr data, out UIntPtr len));
                byte[] b = new byte[checked((int)len.ToUInt64())];
                Marshal.Copy(data, b, 0, b.Length);
                return b;
            }
        }

        /// <summary>Frees the result.</summary>
        public void Dispose() => Handle?.Dispose();
    }
}
