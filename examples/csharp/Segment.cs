// Segments a CT series with a model package and writes an RT Structure Set, through the C#
// binding (bindings/csharp/Autocontour.cs); prints the contours, uncertainty and review flags per
// structure and the case flags, makes the SEG and NIfTI outputs in memory and reads the RT
// Structure Set back.
//
//   mono segment.exe CT_DIR MODEL_DIR OUT.dcm [ORT_LIBRARY]
//
// ORT_LIBRARY defaults to $AUTOCONTOUR_ORT_LIB. Exits 1 with the library's message on failure.
using System;
using Autocontour;

public static class SegmentSample
{
    public static int Main(string[] args)
    {
        if (args.Length < 3 || args.Length > 4)
        {
            Console.Error.WriteLine("usage: segment CT_DIR MODEL_DIR OUT.dcm [ORT_LIBRARY]");
            return 2;
        }
        try
        {
            using (var engine = new Engine(args.Length == 4 ? args[3] : null, "cpu", 2))
            using (var model = new Model(engine, args[1]))
            using (var series = Series.LoadDir(args[0]))
            {
                Geometry g = series.Geometry;
                Console.WriteLine("autocontour {0}, ONNX Runtime {1}, model {2}", Library.Version,
                                  engine.OrtVersion, model.Name);
                Console.WriteLine("CT {0} x {1} x {2}", g.Size[0], g.Size[1], g.Size[2]);
                int last = -25;
                // A CT that does not suit the model (another body region, too short, no body) gets
                // case flags; OnMismatch.Refuse would throw AC_STATUS_NOT_APPLICABLE instead.
                var options = SegmentOptions.Default;
                options.OnMismatch = OnMismatch.Flag;
                // A site profile (names, colours, subset; docs/profiles.md) and an audit log:
                // from the environment here, so that the RTSTRUCT stays comparable by default.
                options.ProfilePath = Environment.GetEnvironmentVariable("AUTOCONTOUR_PROFILE");
                options.AuditLogPath = Environment.GetEnvironmentVariable("AUTOCONTOUR_AUDIT_LOG");
                using (var result = model.Segment(series, options, (stage, f) =>
                {
                    int percent = (int)(f * 100);
                    if (percent >= last + 25) { last = percent; Console.WriteLine("  {0,-10} {1,3}%", stage, percent); }
                }))
                {
                    Console.WriteLine("ran on {0}", result.ExecutionProvider);
                    var structures = result.Structures;
                    for (int i = 0; i < structures.Count; i++)
                    {
                        var s = structures[i];
                        var contours = result.Contours(i);
                        long points = 0;
                        foreach (var c in contours) points += c.Points.Length / 3;
                        Console.WriteLine("  {0} {1,-12} {2,10:F1} ml {3,6} contours {4,8} points", s.Label,
                                          s.Name, s.VolumeMl, contours.Count, points);
                        Uncertainty u = result.StructureUncertainty(i);
                        if (u != null)
                            Console.WriteLine("      uncertainty: mean entropy {0:F3}, boundary {1}, margin {2:F3}",
                                              u.MeanEntropy,
                                              u.BoundaryEntropy.HasValue ? u.BoundaryEntropy.Value.ToString("F3") : "n/a",
                                              u.MeanMargin);
                        foreach (Flag flag in result.Flags(i))
                            Console.WriteLine("      flag {0}: {1}", flag.Code, flag.Message);
                    }
                    var caseFlags = result.CaseFlags;
                    Console.WriteLine("case flags: {0}", caseFlags.Count);
                    foreach (Flag flag in caseFlags) Console.WriteLine("  {0}", flag);
                    result.WriteRtStruct(args[2]);
                    Console.WriteLine("wrote {0}", args[2]);
                    Console.WriteLine("structure 0 written: {0}", result.StructureWritten(0));
                    Console.WriteLine("audit: {0}", result.AuditRecord());
                    // The other outputs in memory, as a host would send them on.
                    byte[] seg = result.SegBytes();
                    byte[] nifti = result.NiftiBytes(true);
                    Console.WriteLine("SEG in memory: {0} bytes; NIfTI (gzip) in memory: {1} bytes", seg.Length,
                                      nifti.Length);
                    // Reading back the RT Structure Set just written, from memory.
                    using (var rs = RtStruct.FromBytes(System.IO.File.ReadAllBytes(args[2])))
                    {
                        var rois = rs.Rois;
                        Console.WriteLine("read back {0} ROIs", rois.Count);
                        if (rois.Count > 0 && rois[0].ContourCount > 0)
                        {
                            RoiContour first = rs.Contour(0, 0);
                            Console.WriteLine("{0}: first contour {1}, {2} points", rois[0].Name,
                                              first.GeometricType, first.Points.Length / 3);
                        }
                    }
                }
            }
            return 0;
        }
        catch (AutocontourException e)
        {
            Console.Error.WriteLine("error: {0}\n  {1}", e.StatusText, e.Message);
            return 1;
        }
    }
}
