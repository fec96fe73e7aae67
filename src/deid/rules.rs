//! The allow-list: every attribute the pseudonymiser keeps, and what it does to each.
//!
//! An attribute that is not listed here is removed, wherever it is (top level or inside a
//! sequence item). Private attributes (odd groups), overlays and curves (groups 60xx, 50xx),
//! the Icon Image Sequence, digital signatures, the Original Attributes Sequence, the Request
//! Attributes Sequence and the file meta group's source fields are therefore all removed by
//! omission. The actions follow PS3.15 Annex E Table E.1-1 (Basic Application Confidentiality
//! Profile with the Retain Longitudinal Temporal Information with Modified Dates Option); each
//! choice is explained in `docs/deidentification.md`.

use dicom_core::{Tag, VR};

/// What the pseudonymiser does to one attribute of the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Action {
    /// Kept as it is (Annex E "K", or not listed there and not identifying). A sequence is kept
    /// and its items are processed by the same rules.
    Keep,
    /// Every value replaced by its keyed pseudonym UID ([`pseudonym_uid`](super::pseudonym_uid);
    /// Annex E "U"); registered DICOM UIDs (`1.2.840.10008.…`) are kept.
    Uid,
    /// Dates shifted by the patient's offset ([`date_offset_days`](super::date_offset_days));
    /// for DT values the date part only (Annex E "C" under the Modified Dates option).
    ShiftDate,
    /// Kept present with an empty value (Annex E "Z": type 2 attributes the IOD requires).
    Empty,
    /// Replaced by the keyed patient pseudonym ([`patient_pseudonym`](super::patient_pseudonym);
    /// Annex E "D").
    Pseudonym,
    /// Replaced by a fixed dummy value (Annex E "D").
    Dummy(&'static str),
}

/// One attribute of the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The attribute's tag.
    pub tag: Tag,
    /// Its keyword in the DICOM dictionary.
    pub keyword: &'static str,
    /// Its value representation (used when the input holds it as UN, and for replaced values).
    pub vr: VR,
    /// What is done to it.
    pub action: Action,
}

const fn r(group: u16, element: u16, keyword: &'static str, vr: VR, action: Action) -> Rule {
    Rule {
        tag: Tag(group, element),
        keyword,
        vr,
        action,
    }
}

use Action::{Empty, Keep, Pseudonym, ShiftDate, Uid};

/// The allow-list, sorted by tag (a unit test checks the order and every keyword against the
/// dictionary).
pub const RULES: &[Rule] = &[
    // SOP Common, General Study, General Series, General Image, General Equipment
    r(0x0008, 0x0005, "SpecificCharacterSet", VR::CS, Keep),
    r(0x0008, 0x0008, "ImageType", VR::CS, Keep),
    r(0x0008, 0x0012, "InstanceCreationDate", VR::DA, ShiftDate),
    r(0x0008, 0x0013, "InstanceCreationTime", VR::TM, Keep),
    r(0x0008, 0x0016, "SOPClassUID", VR::UI, Keep),
    r(0x0008, 0x0018, "SOPInstanceUID", VR::UI, Uid),
    r(0x0008, 0x0020, "StudyDate", VR::DA, ShiftDate),
    r(0x0008, 0x0021, "SeriesDate", VR::DA, ShiftDate),
    r(0x0008, 0x0022, "AcquisitionDate", VR::DA, ShiftDate),
    r(0x0008, 0x0023, "ContentDate", VR::DA, ShiftDate),
    r(0x0008, 0x002A, "AcquisitionDateTime", VR::DT, ShiftDate),
    r(0x0008, 0x0030, "StudyTime", VR::TM, Keep),
    r(0x0008, 0x0031, "SeriesTime", VR::TM, Keep),
    r(0x0008, 0x0032, "AcquisitionTime", VR::TM, Keep),
    r(0x0008, 0x0033, "ContentTime", VR::TM, Keep),
    r(0x0008, 0x0050, "AccessionNumber", VR::SH, Empty),
    r(0x0008, 0x0060, "Modality", VR::CS, Keep),
    r(0x0008, 0x0070, "Manufacturer", VR::LO, Keep),
    r(0x0008, 0x0090, "ReferringPhysicianName", VR::PN, Empty),
    // Code Sequence Macro (inside kept code sequences)
    r(0x0008, 0x0100, "CodeValue", VR::SH, Keep),
    r(0x0008, 0x0102, "CodingSchemeDesignator", VR::SH, Keep),
    r(0x0008, 0x0103, "CodingSchemeVersion", VR::SH, Keep),
    r(0x0008, 0x0104, "CodeMeaning", VR::LO, Keep),
    r(0x0008, 0x0119, "LongCodeValue", VR::UC, Keep),
    r(0x0008, 0x0120, "URNCodeValue", VR::UR, Keep),
    r(0x0008, 0x1070, "OperatorsName", VR::PN, Empty),
    r(0x0008, 0x1090, "ManufacturerModelName", VR::LO, Keep),
    // References between instances: kept, with every instance UID replaced
    r(0x0008, 0x1115, "ReferencedSeriesSequence", VR::SQ, Keep),
    r(0x0008, 0x1140, "ReferencedImageSequence", VR::SQ, Keep),
    r(0x0008, 0x1150, "ReferencedSOPClassUID", VR::UI, Keep),
    r(0x0008, 0x1155, "ReferencedSOPInstanceUID", VR::UI, Uid),
    r(0x0008, 0x1160, "ReferencedFrameNumber", VR::IS, Keep),
    r(0x0008, 0x2112, "SourceImageSequence", VR::SQ, Keep),
    r(0x0008, 0x2218, "AnatomicRegionSequence", VR::SQ, Keep),
    r(0x0008, 0x3010, "IrradiationEventUID", VR::UI, Uid),
    // Patient
    r(0x0010, 0x0010, "PatientName", VR::PN, Pseudonym),
    r(0x0010, 0x0020, "PatientID", VR::LO, Pseudonym),
    r(0x0010, 0x0030, "PatientBirthDate", VR::DA, Empty),
    r(0x0010, 0x0040, "PatientSex", VR::CS, Empty),
    // CT acquisition
    r(0x0018, 0x0015, "BodyPartExamined", VR::CS, Keep),
    r(0x0018, 0x0022, "ScanOptions", VR::CS, Keep),
    r(0x0018, 0x0050, "SliceThickness", VR::DS, Keep),
    r(0x0018, 0x0060, "KVP", VR::DS, Keep),
    r(0x0018, 0x0088, "SpacingBetweenSlices", VR::DS, Keep),
    r(0x0018, 0x0090, "DataCollectionDiameter", VR::DS, Keep),
    r(0x0018, 0x1100, "ReconstructionDiameter", VR::DS, Keep),
    r(0x0018, 0x1110, "DistanceSourceToDetector", VR::DS, Keep),
    r(0x0018, 0x1111, "DistanceSourceToPatient", VR::DS, Keep),
    r(0x0018, 0x1120, "GantryDetectorTilt", VR::DS, Keep),
    r(0x0018, 0x1130, "TableHeight", VR::DS, Keep),
    r(0x0018, 0x1140, "RotationDirection", VR::CS, Keep),
    r(0x0018, 0x1150, "ExposureTime", VR::IS, Keep),
    r(0x0018, 0x1151, "XRayTubeCurrent", VR::IS, Keep),
    r(0x0018, 0x1152, "Exposure", VR::IS, Keep),
    r(0x0018, 0x1160, "FilterType", VR::SH, Keep),
    r(0x0018, 0x1170, "GeneratorPower", VR::IS, Keep),
    r(0x0018, 0x1190, "FocalSpots", VR::DS, Keep),
    r(0x0018, 0x1210, "ConvolutionKernel", VR::SH, Keep),
    r(0x0018, 0x5100, "PatientPosition", VR::CS, Keep),
    r(0x0018, 0x9305, "RevolutionTime", VR::FD, Keep),
    r(0x0018, 0x9306, "SingleCollimationWidth", VR::FD, Keep),
    r(0x0018, 0x9307, "TotalCollimationWidth", VR::FD, Keep),
    r(0x0018, 0x9309, "TableSpeed", VR::FD, Keep),
    r(0x0018, 0x9310, "TableFeedPerRotation", VR::FD, Keep),
    r(0x0018, 0x9311, "SpiralPitchFactor", VR::FD, Keep),
    // Study, series, instance identity and geometry
    r(0x0020, 0x000D, "StudyInstanceUID", VR::UI, Uid),
    r(0x0020, 0x000E, "SeriesInstanceUID", VR::UI, Uid),
    r(0x0020, 0x0010, "StudyID", VR::SH, Empty),
    r(0x0020, 0x0011, "SeriesNumber", VR::IS, Keep),
    r(0x0020, 0x0012, "AcquisitionNumber", VR::IS, Keep),
    r(0x0020, 0x0013, "InstanceNumber", VR::IS, Keep),
    r(0x0020, 0x0020, "PatientOrientation", VR::CS, Keep),
    r(0x0020, 0x0032, "ImagePositionPatient", VR::DS, Keep),
    r(0x0020, 0x0037, "ImageOrientationPatient", VR::DS, Keep),
    r(0x0020, 0x0052, "FrameOfReferenceUID", VR::UI, Uid),
    r(0x0020, 0x0060, "Laterality", VR::CS, Keep),
    r(
        0x0020,
        0x0200,
        "SynchronizationFrameOfReferenceUID",
        VR::UI,
        Uid,
    ),
    r(0x0020, 0x1040, "PositionReferenceIndicator", VR::LO, Empty),
    r(0x0020, 0x1041, "SliceLocation", VR::DS, Keep),
    // Image Pixel, Modality LUT, VOI LUT
    r(0x0028, 0x0002, "SamplesPerPixel", VR::US, Keep),
    r(0x0028, 0x0004, "PhotometricInterpretation", VR::CS, Keep),
    r(0x0028, 0x0006, "PlanarConfiguration", VR::US, Keep),
    r(0x0028, 0x0008, "NumberOfFrames", VR::IS, Keep),
    r(0x0028, 0x0009, "FrameIncrementPointer", VR::AT, Keep),
    r(0x0028, 0x0010, "Rows", VR::US, Keep),
    r(0x0028, 0x0011, "Columns", VR::US, Keep),
    r(0x0028, 0x0030, "PixelSpacing", VR::DS, Keep),
    r(0x0028, 0x0034, "PixelAspectRatio", VR::IS, Keep),
    r(0x0028, 0x0100, "BitsAllocated", VR::US, Keep),
    r(0x0028, 0x0101, "BitsStored", VR::US, Keep),
    r(0x0028, 0x0102, "HighBit", VR::US, Keep),
    r(0x0028, 0x0103, "PixelRepresentation", VR::US, Keep),
    r(0x0028, 0x0106, "SmallestImagePixelValue", VR::US, Keep),
    r(0x0028, 0x0107, "LargestImagePixelValue", VR::US, Keep),
    r(0x0028, 0x0120, "PixelPaddingValue", VR::US, Keep),
    r(0x0028, 0x0121, "PixelPaddingRangeLimit", VR::US, Keep),
    r(0x0028, 0x0301, "BurnedInAnnotation", VR::CS, Keep),
    r(0x0028, 0x1050, "WindowCenter", VR::DS, Keep),
    r(0x0028, 0x1051, "WindowWidth", VR::DS, Keep),
    r(0x0028, 0x1052, "RescaleIntercept", VR::DS, Keep),
    r(0x0028, 0x1053, "RescaleSlope", VR::DS, Keep),
    r(0x0028, 0x1054, "RescaleType", VR::LO, Keep),
    r(
        0x0028,
        0x1101,
        "RedPaletteColorLookupTableDescriptor",
        VR::US,
        Keep,
    ),
    r(
        0x0028,
        0x1102,
        "GreenPaletteColorLookupTableDescriptor",
        VR::US,
        Keep,
    ),
    r(
        0x0028,
        0x1103,
        "BluePaletteColorLookupTableDescriptor",
        VR::US,
        Keep,
    ),
    r(
        0x0028,
        0x1201,
        "RedPaletteColorLookupTableData",
        VR::OW,
        Keep,
    ),
    r(
        0x0028,
        0x1202,
        "GreenPaletteColorLookupTableData",
        VR::OW,
        Keep,
    ),
    r(
        0x0028,
        0x1203,
        "BluePaletteColorLookupTableData",
        VR::OW,
        Keep,
    ),
    r(0x0028, 0x2110, "LossyImageCompression", VR::CS, Keep),
    r(0x0028, 0x2112, "LossyImageCompressionRatio", VR::DS, Keep),
    r(0x0028, 0x2114, "LossyImageCompressionMethod", VR::CS, Keep),
    r(0x0028, 0x3000, "ModalityLUTSequence", VR::SQ, Keep),
    r(0x0028, 0x3002, "LUTDescriptor", VR::US, Keep),
    r(0x0028, 0x3004, "ModalityLUTType", VR::LO, Keep),
    r(0x0028, 0x3006, "LUTData", VR::US, Keep),
    r(0x0028, 0x3010, "VOILUTSequence", VR::SQ, Keep),
    // Performed Procedure Step (General Study / CT Image)
    r(
        0x0040,
        0x0244,
        "PerformedProcedureStepStartDate",
        VR::DA,
        ShiftDate,
    ),
    r(
        0x0040,
        0x0245,
        "PerformedProcedureStepStartTime",
        VR::TM,
        Keep,
    ),
    // RT Structure Set, ROI Contour, RT ROI Observations (contours stay usable)
    r(
        0x3006,
        0x0002,
        "StructureSetLabel",
        VR::SH,
        Action::Dummy("PSEUDONYMISED"),
    ),
    r(0x3006, 0x0008, "StructureSetDate", VR::DA, ShiftDate),
    r(0x3006, 0x0009, "StructureSetTime", VR::TM, Keep),
    r(
        0x3006,
        0x0010,
        "ReferencedFrameOfReferenceSequence",
        VR::SQ,
        Keep,
    ),
    r(0x3006, 0x0012, "RTReferencedStudySequence", VR::SQ, Keep),
    r(0x3006, 0x0014, "RTReferencedSeriesSequence", VR::SQ, Keep),
    r(0x3006, 0x0016, "ContourImageSequence", VR::SQ, Keep),
    r(0x3006, 0x0020, "StructureSetROISequence", VR::SQ, Keep),
    r(0x3006, 0x0022, "ROINumber", VR::IS, Keep),
    r(0x3006, 0x0024, "ReferencedFrameOfReferenceUID", VR::UI, Uid),
    r(0x3006, 0x0026, "ROIName", VR::LO, Keep),
    r(0x3006, 0x002A, "ROIDisplayColor", VR::IS, Keep),
    r(0x3006, 0x0036, "ROIGenerationAlgorithm", VR::CS, Keep),
    r(0x3006, 0x0039, "ROIContourSequence", VR::SQ, Keep),
    r(0x3006, 0x0040, "ContourSequence", VR::SQ, Keep),
    r(0x3006, 0x0042, "ContourGeometricType", VR::CS, Keep),
    r(0x3006, 0x0044, "ContourSlabThickness", VR::DS, Keep),
    r(0x3006, 0x0045, "ContourOffsetVector", VR::DS, Keep),
    r(0x3006, 0x0046, "NumberOfContourPoints", VR::IS, Keep),
    r(0x3006, 0x0048, "ContourNumber", VR::IS, Keep),
    r(0x3006, 0x0050, "ContourData", VR::DS, Keep),
    r(0x3006, 0x0080, "RTROIObservationsSequence", VR::SQ, Keep),
    r(0x3006, 0x0082, "ObservationNumber", VR::IS, Keep),
    r(0x3006, 0x0084, "ReferencedROINumber", VR::IS, Keep),
    r(0x3006, 0x00A4, "RTROIInterpretedType", VR::CS, Keep),
    r(0x3006, 0x00A6, "ROIInterpreter", VR::PN, Empty),
    // Approval
    r(0x300E, 0x0002, "ApprovalStatus", VR::CS, Keep),
    r(0x300E, 0x0004, "ReviewDate", VR::DA, ShiftDate),
    r(0x300E, 0x0005, "ReviewTime", VR::TM, Keep),
    r(0x300E, 0x0008, "ReviewerName", VR::PN, Empty),
    // Pixel data (burned-in text is not removed: see the documentation)
    r(0x7FE0, 0x0008, "FloatPixelData", VR::OF, Keep),
    r(0x7FE0, 0x0009, "DoubleFloatPixelData", VR::OD, Keep),
    r(0x7FE0, 0x0010, "PixelData", VR::OW, Keep),
];

/// The rule for `tag`, or `None` when the attribute is not on the allow-list (it is removed).
pub fn rule_for(tag: Tag) -> Option<&'static Rule> {
    RULES
        .binary_search_by(|r| r.tag.cmp(&tag))
        .ok()
        .and_then(|i| RULES.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::dictionary::DataDictionary;

    #[test]
    fn rules_are_sorted_named_as_in_the_dictionary_and_documented() {
        for pair in RULES.windows(2) {
            assert!(pair[0].tag < pair[1].tag, "{:?} {:?}", pair[0], pair[1]);
        }
        let dict = dicom_dictionary_std::StandardDataDictionary;
        for rule in RULES {
            let entry = dict.by_tag(rule.tag).expect("a standard attribute");
            assert_eq!(entry.alias, rule.keyword, "{}", rule.tag);
            // No private, overlay or curve group is ever kept.
            assert!(rule.tag.group() % 2 == 0);
            assert!(!(0x5000..=0x60FF).contains(&rule.tag.group()));
        }
        // Every attribute of the list is in the documentation's table.
        let docs = include_str!("../../docs/deidentification.md");
        for rule in RULES {
            let named = docs
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == rule.keyword);
            assert!(named, "{} is not in docs/deidentification.md", rule.keyword);
        }
        assert!(rule_for(Tag(0x0010, 0x0010)).is_some());
        assert!(rule_for(Tag(0x0010, 0x1010)).is_none());
    }
}
